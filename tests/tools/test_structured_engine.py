"""Structured outputs in the engine: scripted models whose replies break the schema, constrained anyway.

The scripted model pushes one token per step; where the grammar forbids it the mask leaves the
model's other (equal) logits, so what comes out is whatever the grammar allows: valid, not the
script. Each test also runs the same request unconstrained, to show the script is invalid.
"""

from __future__ import annotations

import gc
import json
import weakref

import jsonschema
import pytest

from mlxcli.core.collect import collect
from mlxcli.core.errors import InvalidRequest
from mlxcli.core.request import ChatRequest, Grammar, Message, Sampling, ToolSpec
from mlxcli.engine.engine import EngineSettings
from tests.support.http import wait_for
from tests.support.models import scripted_of

PERSON = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 12},
        "age": {"type": "integer", "minimum": 0, "maximum": 120},
        "tags": {"type": "array", "items": {"enum": ["a", "b"]}, "maxItems": 3},
    },
    "required": ["name", "age", "tags"],
    "additionalProperties": False,
}
INVALID = 'Sure! Here it is: {"name": "Bob", "age": "old", "tags": ["c"]}'
WEATHER = ToolSpec(
    "get_weather",
    "Weather",
    {"type": "object", "properties": {"city": {"type": "string", "maxLength": 10}, "days": {"type": "integer", "minimum": 1, "maximum": 7}},
     "required": ["city", "days"], "additionalProperties": False},
    strict=True,
    param="tools[0].function.parameters",
)
TIME = ToolSpec("get_time", None, {"type": "object", "properties": {"zone": {"type": "string"}}})


def ask(text="Who?", *, schema=PERSON, max_tokens=80, **kwargs) -> ChatRequest:
    fmt = Grammar("json", "response_format.json_schema.schema", schema) if schema is not False else None
    return ChatRequest([Message("user", text)], Sampling(max_tokens=max_tokens), response_format=fmt, **kwargs)


def test_a_reply_that_breaks_the_schema_comes_out_valid(scripted_engine):
    engine = scripted_engine(lambda prompt: INVALID)
    assert collect(engine.submit(ask(schema=False))).text == INVALID
    completion = collect(engine.submit(ask()))
    jsonschema.validate(json.loads(completion.text), PERSON)
    assert completion.finish.reason == "stop"


def test_json_object_mode_ends_the_answer_with_the_object(scripted_engine):
    engine = scripted_engine(lambda prompt: '{"a": [1, 2]} I hope this helps!')
    completion = collect(engine.submit(ask(schema=None)))
    assert completion.text == '{"a": [1, 2]}' and completion.finish.reason == "stop"


def test_a_valid_reply_passes_unchanged(scripted_engine):
    reply = '{"name": "Ann", "age": 31, "tags": ["a", "b"]}'
    engine = scripted_engine(lambda prompt: reply)
    assert collect(engine.submit(ask())).text == reply


def test_a_cut_off_answer_is_reported_as_length(scripted_engine):
    engine = scripted_engine(lambda prompt: '{"name": "Ann", "age": 31, "tags": ["a", "b"]}')
    completion = collect(engine.submit(ask(max_tokens=5)))
    assert completion.finish.reason == "length"
    with pytest.raises(ValueError):
        json.loads(completion.text)


@pytest.mark.parametrize(
    "schema, reason",
    [
        ({"type": "object", "properties": {"a": {"type": "string", "pattern": "(?<=x)a"}}}, "look-around"),
        ({"type": "wat"}, "Invalid type"),
        ({"$ref": "#/definitions/missing"}, "does not exist"),
    ],
)
def test_a_schema_that_cannot_compile_is_refused_naming_it(scripted_engine, schema, reason):
    engine = scripted_engine(lambda prompt: "{}")
    with pytest.raises(InvalidRequest) as err:
        engine.submit(ask(schema=schema))
    assert err.value.param == "response_format.json_schema.schema" and reason in err.value.message


def test_a_bad_strict_tool_schema_names_that_tool(tool_engine):
    engine = tool_engine(lambda prompt: "ok")
    bad = ToolSpec("f", None, {"type": "nope"}, strict=True, param="tools[1].function.parameters")
    with pytest.raises(InvalidRequest) as err:
        engine.submit(ask(schema=False, tools=[WEATHER, bad]))
    assert err.value.param == "tools[1].function.parameters"


@pytest.mark.parametrize("thinking, reply", [("opened", "I should answer.\n</think>\n\n"), ("optional", "<think>\nI should answer.\n</think>\n\n")])
def test_reasoning_is_free_then_the_answer_is_constrained(tool_engine, thinking, reply):
    engine = tool_engine(lambda prompt: reply + INVALID, thinking=thinking)
    completion = collect(engine.submit(ask()))
    assert completion.reasoning == "I should answer."
    jsonschema.validate(json.loads(completion.text), PERSON)


def test_a_strict_tool_gets_arguments_that_follow_its_schema(tool_engine):
    reply = 'Let me look.\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris", "days": "two"}}\n</tool_call>'
    engine = tool_engine(lambda prompt: reply)
    (loose,) = collect(engine.submit(ask(schema=False, tools=[TIME, ToolSpec("get_weather", None, WEATHER.parameters)]))).tool_calls
    with pytest.raises(jsonschema.ValidationError):  # not strict: the script's arguments, as they are
        jsonschema.validate(json.loads(loose.arguments), WEATHER.parameters)
    completion = collect(engine.submit(ask(schema=False, tools=[TIME, WEATHER])))
    assert completion.text.startswith("Let me look.")  # free text may follow a call (the script's, shifted)
    (call,) = completion.tool_calls
    assert call.name == "get_weather"
    jsonschema.validate(json.loads(call.arguments), WEATHER.parameters)


def test_required_tool_choice_calls_only_offered_tools(tool_engine):
    # Without the constraint the model names a tool that does not exist.
    engine = tool_engine(lambda prompt: '\n{"name": "Paris", "arguments": {"city": "Paris"}}\n</tool_call>\nMore text.')
    completion = collect(engine.submit(ask(schema=False, tools=[WEATHER, TIME], tool_choice="required", parallel_tool_calls=False)))
    assert [c.name for c in completion.tool_calls] in (["get_weather"], ["get_time"])
    assert completion.text == "" and completion.finish.reason == "tool_calls"


def test_a_named_tool_choice_ends_the_answer_after_its_call(tool_engine):
    engine = tool_engine(lambda prompt: '{"city": "Oslo", "days": 3}}\n</tool_call>\nAnd now some chatter.')
    completion = collect(engine.submit(ask(schema=False, tools=[WEATHER, TIME], tool_choice={"name": "get_weather"})))
    assert [(c.name, json.loads(c.arguments)) for c in completion.tool_calls] == [("get_weather", {"city": "Oslo", "days": 3})]
    assert completion.text == ""


PATCH = Grammar("lark", "tools[0].format.definition", definition='start: "*** Begin Patch\\n" LINE+ "*** End Patch"\nLINE: /[+-][a-z ]*\\n/')


def test_a_custom_tool_input_follows_its_grammar(tool_engine):
    patch = ToolSpec("apply_patch", "Edit files", custom=True, grammar=PATCH, param="tools[0].format")
    reply = '\n{"name": "apply_patch"}\n*** Begin Patch\n+hello world\n-Bye\n*** End Patch\n</tool_call>'
    engine = tool_engine(lambda prompt: reply)
    (call,) = collect(engine.submit(ask(schema=False, tools=[patch], tool_choice="required"))).tool_calls
    assert call.custom and call.name == "apply_patch"
    assert call.arguments.startswith("*** Begin Patch\n+hello world\n-") and call.arguments.endswith("*** End Patch")


def test_a_bad_custom_grammar_is_refused_naming_it(tool_engine):
    engine = tool_engine(lambda prompt: "ok")
    bad = ToolSpec("apply_patch", None, custom=True, grammar=Grammar("lark", "tools[0].format.definition", definition="start: missing_rule"))
    with pytest.raises(InvalidRequest) as err:
        engine.submit(ask(schema=False, tools=[bad], tool_choice="required"))
    assert err.value.param == "tools[0].format.definition" and "missing_rule" in err.value.message


def test_constrained_and_free_requests_share_a_batch(scripted_engine):
    long_invalid = INVALID + " And more words after it." * 40  # the free answer is still going when the other joins
    engine = scripted_engine(lambda prompt: long_invalid, EngineSettings(temperature=0.0))
    scripted_of(engine).step_delay = 0.01
    free, constrained = engine.submit(ask(schema=False, max_tokens=400)), engine.submit(ask())
    assert collect(free).text == long_invalid
    jsonschema.validate(json.loads(collect(constrained).text), PERSON)
    assert scripted_of(engine).widest == 2


def test_a_cancelled_request_frees_its_matcher(scripted_engine):
    engine = scripted_engine(lambda prompt: '{"name": "' + "a" * 200)
    scripted_of(engine).step_delay = 0.01
    generation = engine.submit(ask(max_tokens=400, schema={"type": "object", "properties": {"name": {"type": "string"}}}))
    matcher = weakref.ref(generation.job.constraint)
    next(iter(generation))
    generation.cancel()
    del generation
    assert wait_for(lambda: gc.collect() is not None and matcher() is None)

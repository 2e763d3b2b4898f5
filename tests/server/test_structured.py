"""Structured outputs through the official SDKs: ``parse()`` helpers, streams, stored formats, custom tools, errors.

The scripted model answers every question with prose around broken JSON, so a typed object
comes back only because the constraint made the output valid.
"""

from __future__ import annotations

import json
from typing import Literal

import anthropic
import httpx
import jsonschema
import openai
import pytest
from pydantic import BaseModel, Field

from mlxcli.engine.engine import EngineSettings, MlxEngine
from mlxcli.store import ConversationStore
from tests.support.models import scripted_model
from tests.support.server import RunningServer
from tests.support.streams import check_responses_stream

BROKEN = 'Sure! Here it is: {"name": "Bob", "age": "old", "tags": ["c"]}'
PATCH = '*** Begin Patch\n+hello world\n*** End Patch'
PATCH_GRAMMAR = 'start: "*** Begin Patch\\n" LINE+ "*** End Patch"\nLINE: /[+-][a-z ]*\\n/'
APPLY_PATCH = {"type": "custom", "name": "apply_patch", "description": "Edit files",
               "format": {"type": "grammar", "syntax": "lark", "definition": PATCH_GRAMMAR}}


class Person(BaseModel):
    name: str = Field(max_length=12)
    age: int = Field(ge=0, le=120)
    tags: list[Literal["a", "b"]] = Field(max_length=3)


PERSON = Person.model_json_schema()


def respond(prompt: str) -> str:
    if prompt.endswith("<tool_call>"):  # a forced call: the rest of it
        return f'\n{{"name": "apply_patch"}}\n{PATCH}\n</tool_call>'
    if "patch" in prompt.rsplit("<|im_start|>user", 1)[-1]:
        return f'I will edit it.\n<tool_call>\n{{"name": "apply_patch"}}\n{PATCH}\n</tool_call>'
    return BROKEN


@pytest.fixture(scope="module")
def server(tokenizer_dir):
    engine = MlxEngine([scripted_model(tokenizer_dir, respond)], EngineSettings(temperature=0.0)).start()
    with RunningServer(engine, store=ConversationStore.memory()) as srv:
        yield srv
    engine.stop(grace=1)


@pytest.fixture
def oai(server):
    return openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)


@pytest.fixture
def claude(server):
    return anthropic.Anthropic(base_url=server.url, api_key="unused", max_retries=0)


QUESTION = [{"role": "user", "content": "Describe Bob as JSON."}]


def test_without_a_format_the_script_is_broken_json(oai):
    assert oai.chat.completions.create(model="m", messages=QUESTION).choices[0].message.content == BROKEN


def test_chat_parse_returns_a_typed_object(oai):
    message = oai.chat.completions.parse(model="m", messages=QUESTION, response_format=Person).choices[0].message
    assert isinstance(message.parsed, Person)
    assert message.parsed == Person.model_validate_json(message.content)


def test_chat_stream_helper_parses_the_final_completion(oai):
    with oai.chat.completions.stream(model="m", messages=QUESTION, response_format=Person) as stream:
        deltas = [e.delta for e in stream if e.type == "content.delta"]
        final = stream.get_final_completion()
    assert isinstance(final.choices[0].message.parsed, Person) and "".join(deltas) == final.choices[0].message.content


def test_chat_json_object_mode(oai):
    r = oai.chat.completions.create(model="m", messages=QUESTION, response_format={"type": "json_object"})
    assert isinstance(json.loads(r.choices[0].message.content), dict)


def test_chat_cut_off_json_says_length(oai):
    with pytest.raises(openai.LengthFinishReasonError):
        oai.chat.completions.parse(model="m", messages=QUESTION, response_format=Person, max_completion_tokens=4)


def test_responses_parse_and_the_stored_response_keeps_the_format(oai):
    r = oai.responses.parse(model="m", input="Describe Bob as JSON.", text_format=Person)
    assert isinstance(r.output_parsed, Person)
    stored = oai.responses.retrieve(r.id)
    assert stored.text.format.type == "json_schema" and stored.text.format.name == "Person"
    assert stored.text.format.schema_["properties"].keys() == PERSON["properties"].keys()


def test_responses_stream_helper(oai, server):
    with oai.responses.stream(model="m", input="Describe Bob as JSON.", text_format=Person) as stream:
        final = stream.get_final_response()
    assert isinstance(final.output_parsed, Person)
    body = {"model": "m", "input": "Describe Bob as JSON.", "stream": True, "text": {"format": {"type": "json_object"}}}
    with httpx.stream("POST", server.url + "/v1/responses", json=body, timeout=60) as r:
        done = check_responses_stream(r.read().decode())
    assert isinstance(json.loads(done["output"][0]["content"][0]["text"]), dict)


def test_responses_cut_off_json_is_incomplete(oai):
    r = oai.responses.create(model="m", input="Describe Bob.", max_output_tokens=4, text={"format": {"type": "json_object"}})
    assert r.status == "incomplete" and r.incomplete_details.reason == "max_output_tokens"


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_anthropic_output_format(claude, stream):
    body = dict(model="m", max_tokens=100, messages=QUESTION, output_config={"format": {"type": "json_schema", "schema": PERSON}})
    if stream:
        with claude.messages.stream(**body) as s:
            message = s.get_final_message()
    else:
        message = claude.messages.create(**body)
    jsonschema.validate(json.loads(message.content[0].text), PERSON)
    assert message.stop_reason == "end_turn"


def test_anthropic_parse_returns_a_typed_object(claude):
    message = claude.messages.parse(model="m", max_tokens=100, messages=QUESTION, output_format=Person)
    assert isinstance(message.parsed_output, Person)


def test_a_strict_anthropic_tool(claude):
    tool = {"name": "get_weather", "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"],
            "additionalProperties": False}, "strict": True}
    message = claude.messages.create(model="m", max_tokens=60, messages=QUESTION, tools=[tool], tool_choice={"type": "any"})
    (use,) = [b for b in message.content if b.type == "tool_use"]
    jsonschema.validate(use.input, tool["input_schema"])


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_a_custom_tool_call_follows_its_grammar(oai, server, stream):
    body = {"model": "m", "input": "Please patch the file.", "tools": [APPLY_PATCH]}
    if not stream:
        r = oai.responses.create(**body, tool_choice={"type": "custom", "name": "apply_patch"})
        items = [i.model_dump() for i in r.output]
    else:
        with httpx.stream("POST", server.url + "/v1/responses", json={**body, "stream": True}, timeout=60) as raw:
            items = check_responses_stream(raw.read().decode())["output"]
    (call,) = [i for i in items if i["type"] == "custom_tool_call"]
    assert call["name"] == "apply_patch" and call["input"] == PATCH and call["call_id"].startswith("call_")
    # The call and its output go back as input items.
    follow = oai.responses.create(model="m", input=[
        {"type": "message", "role": "user", "content": "Please patch the file."},
        {"type": "custom_tool_call", "call_id": call["call_id"], "name": "apply_patch", "input": call["input"]},
        {"type": "custom_tool_call_output", "call_id": call["call_id"], "output": "Done."},
    ], text={"format": {"type": "json_object"}})
    assert follow.status == "completed"


BAD = {"type": "object", "properties": {"a": {"type": "string", "pattern": "(?<=x)a"}}}


def test_bad_schemas_are_400s_naming_the_parameter(oai, claude):
    with pytest.raises(openai.BadRequestError) as err:
        oai.chat.completions.create(model="m", messages=QUESTION, response_format={
            "type": "json_schema", "json_schema": {"name": "x", "schema": BAD}})
    assert err.value.body["param"] == "response_format.json_schema.schema" and "look-around" in err.value.body["message"]
    tool = {"type": "function", "function": {"name": "f", "parameters": BAD, "strict": True}}
    with pytest.raises(openai.BadRequestError) as err:
        oai.chat.completions.create(model="m", messages=QUESTION, tools=[tool], tool_choice="required")
    assert err.value.body["param"] == "tools[0].function.parameters"
    with pytest.raises(openai.BadRequestError) as err:
        oai.responses.create(model="m", input="x", text={"format": {"type": "json_schema", "name": "x", "schema": BAD}})
    assert err.value.body["param"] == "text.format.schema"
    bad_tool = {**APPLY_PATCH, "format": {"type": "grammar", "syntax": "lark", "definition": "start: nowhere"}}
    with pytest.raises(openai.BadRequestError) as err:
        oai.responses.create(model="m", input="Please patch the file.", tools=[{"type": "function", "name": "g"}, bad_tool])
    assert err.value.body["param"] == "tools[1].format.definition"
    with pytest.raises(anthropic.BadRequestError) as err:
        claude.messages.create(model="m", max_tokens=10, messages=QUESTION, output_config={"format": {"type": "json_schema", "schema": BAD}})
    assert "output_config.format.schema" in err.value.body["error"]["message"]

"""The engine with scripted models that call tools and reason: exact events, both marker tokenizations."""

from __future__ import annotations

import json

import pytest

from mlxcli.core.collect import collect
from mlxcli.core.errors import InvalidRequest
from mlxcli.core.events import ReasoningDelta, TextDelta, ToolCallDelta
from mlxcli.core.request import ChatRequest, Message, Sampling, ToolSpec
from mlxcli.engine.engine import EngineSettings
from mlxcli.engine.settings import ModelSpec
from tests.support.models import Recording

WEATHER = ToolSpec("get_weather", "Weather", {"type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer"}}})
TIME = ToolSpec("get_time", None, {"type": "object", "properties": {"zone": {"type": "string"}}})
JSON_TWO_CALLS = (
    "I'll look both up.\n"
    '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris", "days": 2}}\n</tool_call>\n'
    '<tool_call>\n{"name": "get_time", "arguments": {"zone": "CET"}}\n</tool_call>'
)
XML_TWO_CALLS = (
    "I'll look both up.\n"
    "<tool_call>\n<function=get_weather>\n<parameter=city>\nParis\n</parameter>\n<parameter=days>\n2\n</parameter>\n</function>\n</tool_call>\n"
    "<tool_call>\n<function=get_time>\n<parameter=zone>\nCET\n</parameter>\n</function>\n</tool_call>"
)
EXPECTED = [("get_weather", {"city": "Paris", "days": 2}), ("get_time", {"zone": "CET"})]


def ask(text="Weather and time in Paris?", **kwargs) -> ChatRequest:
    return ChatRequest(messages=[Message("user", text)], tools=[WEATHER, TIME], **kwargs)


def calls(completion):
    return [(c.name, json.loads(c.arguments)) for c in completion.tool_calls]


@pytest.mark.parametrize("single", [False, True], ids=["split-markers", "single-token-markers"])
@pytest.mark.parametrize("calls_format, reply", [("json", JSON_TWO_CALLS), ("xml", XML_TWO_CALLS)])
def test_two_calls_after_text(tool_engine, calls_format, reply, single):
    engine = tool_engine(lambda prompt: reply, calls=calls_format, single_token_markers=single)
    tokens = engine.registry.default.tokenizer.encode("<tool_call>", add_special_tokens=False)
    assert len(tokens) == (1 if single else 5)  # the marker is one token, or split across five
    events = list(engine.submit(ask()))
    completion = collect(events)
    assert completion.text == "I'll look both up."
    assert calls(completion) == EXPECTED
    assert completion.finish.reason == "tool_calls"
    text = "".join(e.text for e in events if isinstance(e, TextDelta))
    assert "<" not in text and "tool_call" not in text
    assert [e.index for e in events if isinstance(e, ToolCallDelta)] == [0, 0, 1, 1]


@pytest.mark.parametrize("single", [False, True], ids=["split-markers", "single-token-markers"])
def test_reasoning_then_answer(tool_engine, single):
    engine = tool_engine(lambda prompt: "<think>\nTwo plus two.\n</think>\n\nIt is 4.", single_token_markers=single)
    events = list(engine.submit(ChatRequest([Message("user", "2+2?")])))
    completion = collect(events)
    assert (completion.reasoning, completion.text) == ("Two plus two.", "It is 4.")
    assert completion.finish.reason == "stop"
    usage = completion.finish.usage
    assert 0 < usage.reasoning_tokens < usage.completion_tokens
    # The tokens of the think block: its text and end marker, and the start marker's last token.
    encode = lambda text: len(engine.registry.default.tokenizer.encode(text, add_special_tokens=False))  # noqa: E731
    assert encode("\nTwo plus two.\n</think>") <= usage.reasoning_tokens <= encode("<think>\nTwo plus two.\n</think>")
    assert all("think" not in e.text for e in events if isinstance(e, (TextDelta, ReasoningDelta)))


def test_template_that_opens_the_think_block(tool_engine):
    respond = Recording(lambda prompt: "The user asks for a sum.\n</think>\n\n4")
    engine = tool_engine(respond, thinking="opened")
    completion = collect(engine.submit(ChatRequest([Message("user", "2+2?")])))
    assert respond.prompts[-1].endswith("<|im_start|>assistant\n<think>\n")
    assert (completion.reasoning, completion.text) == ("The user asks for a sum.", "4")


def test_reasoning_switched_off_per_request(tool_engine):
    respond = Recording(lambda prompt: "4")
    engine = tool_engine(respond, thinking="opened")
    for switch in ({"template_kwargs": {"enable_thinking": False}}, {"reasoning": "off"}):
        completion = collect(engine.submit(ChatRequest([Message("user", "2+2?")], **switch)))
        assert respond.prompts[-1].endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")
        assert (completion.reasoning, completion.text) == ("", "4")


def test_reasoning_strip(tool_engine):
    engine = tool_engine(lambda prompt: "<think>hidden</think>Shown.", settings=EngineSettings(temperature=0.0, reasoning="strip"))
    events = list(engine.submit(ChatRequest([Message("user", "hi")])))
    assert not any(isinstance(e, ReasoningDelta) for e in events)
    completion = collect(events)
    assert completion.text == "Shown." and completion.finish.usage.reasoning_tokens > 0


def test_named_tool_choice_is_prefilled_and_parsed(tool_engine):
    respond = Recording(lambda prompt: '{"zone": "UTC"}}\n</tool_call>')
    engine = tool_engine(respond)
    completion = collect(engine.submit(ask(tool_choice={"name": "get_time"})))
    assert respond.prompts[-1].endswith('<|im_start|>assistant\n<tool_call>\n{"name": "get_time", "arguments": ')
    assert calls(completion) == [("get_time", {"zone": "UTC"})] and completion.text == ""
    assert completion.finish.reason == "tool_calls"


@pytest.mark.parametrize("single", [False, True], ids=["split-markers", "single-token-markers"])
def test_required_tool_choice(tool_engine, single):
    respond = Recording(lambda prompt: '\n{"name": "get_weather", "arguments": {"city": "Oslo"}}\n</tool_call>')
    engine = tool_engine(respond, single_token_markers=single)
    completion = collect(engine.submit(ask(tool_choice="required")))
    assert respond.prompts[-1].endswith("<|im_start|>assistant\n<tool_call>")
    assert calls(completion) == [("get_weather", {"city": "Oslo"})]


def test_tool_choice_none_leaves_calls_as_text(tool_engine):
    respond = Recording(lambda prompt: JSON_TWO_CALLS)
    engine = tool_engine(respond)
    completion = collect(engine.submit(ask(tool_choice="none")))
    assert "# Tools" not in respond.prompts[-1]
    assert completion.text == JSON_TWO_CALLS and completion.tool_calls == []
    assert completion.finish.reason == "stop"


def test_parallel_tool_calls_false(tool_engine):
    engine = tool_engine(lambda prompt: JSON_TWO_CALLS)
    assert calls(collect(engine.submit(ask(parallel_tool_calls=False)))) == EXPECTED[:1]


def test_a_call_cut_off_by_max_tokens(tool_engine):
    engine = tool_engine(lambda prompt: JSON_TWO_CALLS)
    completion = collect(engine.submit(ask(sampling=Sampling(max_tokens=20))))
    assert completion.finish.reason == "length" and completion.tool_calls == []
    assert completion.text == "I'll look both up."


def test_a_stop_string_inside_a_call(tool_engine):
    engine = tool_engine(lambda prompt: JSON_TWO_CALLS)
    completion = collect(engine.submit(ask(sampling=Sampling(stop=["Paris"]))))
    assert completion.text == "I'll look both up." and completion.tool_calls == []
    assert completion.finish.reason == "stop" and completion.finish.stop_sequence == "Paris"


def test_parser_override_from_the_model_spec(tool_engine):
    reply = "<tool_call>get_weather\n<arg_key>city</arg_key>\n<arg_value>Paris</arg_value>\n</tool_call>"
    engine = tool_engine(lambda prompt: reply, spec=ModelSpec(model="scripted", tool_call_parser="glm47"))
    assert calls(collect(engine.submit(ask()))) == [("get_weather", {"city": "Paris"})]


def test_tool_calling_turned_off(tool_engine):
    engine = tool_engine(lambda prompt: "ok", spec=ModelSpec(model="scripted", tool_call_parser="none"))
    with pytest.raises(InvalidRequest) as err:
        engine.submit(ask())
    assert err.value.param == "tools"
    assert collect(engine.submit(ChatRequest([Message("user", "hi")]))).text == "ok"


def test_fallback_format_on_a_template_without_tools(scripted_engine):
    """SmolLM2's template knows no tools: they are described in the system prompt, and the Hermes format is parsed."""
    respond = Recording(lambda prompt: 'Checking.\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>')
    engine = scripted_engine(respond)
    completion = collect(engine.submit(ask()))
    assert "<tools>\n" in respond.prompts[-1] and '"name": "get_weather"' in respond.prompts[-1]
    assert completion.text == "Checking." and calls(completion) == [("get_weather", {"city": "Paris"})]
    assert completion.finish.reason == "tool_calls"

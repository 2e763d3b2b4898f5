"""Tool calls and reasoning over OpenAI Chat Completions: the SDK, the stream grammar, a round trip."""

from __future__ import annotations

import json

import httpx
import openai
import pytest

from mlxcli.engine.engine import EngineSettings
from mlxcli.engine.settings import ModelSpec
from tests.support.models import Recording
from tests.support.streams import check_chat_stream
from tests.tools.replies import (
    ANSWER, CALL_IN_PROMPT, EXPECTED_CALLS, FORMAT_IDS, FORMATS, REASONED, REASONED_ANSWER, RESULT, RESULT_IN_PROMPT,
    THOUGHT, TIME_TOOL, TWO_CALLS, TWO_CALLS_TEXT, WEATHER_TOOL, round_trip,
)

TOOLS = [{"type": "function", "function": WEATHER_TOOL}, {"type": "function", "function": TIME_TOOL}]
QUESTION = [{"role": "user", "content": "Weather and time in Paris?"}]


def client_for(server) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)


def ask(server, stream: bool, **body) -> dict:
    """One completion, streamed (checked chunk by chunk) or not; the message as a dict."""
    client = client_for(server)
    body = {"model": "m", "messages": QUESTION, **body}
    if not stream:
        r = client.chat.completions.create(**body)
        message = r.choices[0].message
        return {
            "content": message.content,
            "reasoning_content": getattr(message, "reasoning_content", None),
            "tool_calls": [{"id": c.id, "name": c.function.name, "arguments": c.function.arguments} for c in message.tool_calls or []],
            "finish_reason": r.choices[0].finish_reason,
            "usage": r.usage.model_dump(),
        }
    with httpx.stream("POST", server.url + "/v1/chat/completions", json={**body, "stream": True, "stream_options": {"include_usage": True}}) as r:
        assert r.status_code == 200
        checked = check_chat_stream(r.read().decode())
    # The SDK's own accumulator agrees.
    with client.chat.completions.stream(**body) as s:
        final = s.get_final_completion().choices[0]
    sdk_calls = [(c.function.name, json.loads(c.function.arguments)) for c in final.message.tool_calls or []]
    assert sdk_calls == [(c["name"], json.loads(c["arguments"])) for c in checked["tool_calls"]]
    assert (final.message.content or "") == checked["content"] and final.finish_reason == checked["finish_reason"]
    return checked


def parsed(calls) -> list[tuple]:
    return [(c["name"], json.loads(c["arguments"])) for c in calls]


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("calls, single", FORMATS, ids=FORMAT_IDS)
def test_two_calls_after_text(tool_server, calls, single, stream):
    server = tool_server(lambda prompt: TWO_CALLS[calls], calls=calls, single_token_markers=single)
    message = ask(server, stream, tools=TOOLS)
    assert parsed(message["tool_calls"]) == EXPECTED_CALLS
    assert message["content"] == TWO_CALLS_TEXT
    assert message["finish_reason"] == "tool_calls"
    ids = [c["id"] for c in message["tool_calls"]]
    assert all(i.startswith("call_") for i in ids) and len(set(ids)) == 2


def test_only_calls_gives_null_content(tool_server):
    server = tool_server(lambda prompt: TWO_CALLS["json"].split("\n", 1)[1])
    message = ask(server, False, tools=TOOLS)
    assert message["content"] is None and len(message["tool_calls"]) == 2


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_round_trip(tool_server, stream):
    respond = Recording(round_trip)
    server = tool_server(respond)
    first = ask(server, stream, tools=TOOLS)
    assert first["finish_reason"] == "tool_calls" and first["content"] == "Let me check."
    (call,) = first["tool_calls"]
    messages = QUESTION + [
        {"role": "assistant", "content": first["content"], "tool_calls": [
            {"id": call["id"], "type": "function", "function": {"name": call["name"], "arguments": call["arguments"]}}
        ]},
        {"role": "tool", "tool_call_id": call["id"], "content": RESULT},
    ]
    second = ask(server, stream, tools=TOOLS, messages=messages)
    assert second["content"] == ANSWER and second["finish_reason"] == "stop" and second["tool_calls"] == []
    prompt = respond.prompts[-1]
    assert CALL_IN_PROMPT in prompt and RESULT_IN_PROMPT in prompt
    assert prompt.index(CALL_IN_PROMPT) < prompt.index(RESULT_IN_PROMPT) < prompt.rindex("<|im_start|>assistant\n")


def test_round_trip_with_the_fallback_format(scripted_engine, serve):
    """SmolLM2's template knows no tools: the fallback prompt carries them, and the call and result."""
    respond = Recording(round_trip)
    server = serve(scripted_engine(respond))
    first = ask(server, True, tools=TOOLS)
    (call,) = first["tool_calls"]
    assert (call["name"], json.loads(call["arguments"])) == ("get_weather", {"city": "Paris"})
    assert "<tools>\n" in respond.prompts[-1]
    messages = QUESTION + [
        {"role": "assistant", "content": None, "tool_calls": [{"id": call["id"], "type": "function", "function": {"name": call["name"], "arguments": call["arguments"]}}]},
        {"role": "tool", "tool_call_id": call["id"], "content": RESULT},
    ]
    assert ask(server, False, tools=TOOLS, messages=messages)["content"] == ANSWER
    assert RESULT_IN_PROMPT in respond.prompts[-1]
    assert '<|im_start|>assistant\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call><|im_end|>' in respond.prompts[-1]


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_tool_choice(tool_server, stream):
    def respond(prompt: str) -> str:
        if prompt.endswith('"name": "get_time", "arguments": '):
            return '{"zone": "UTC"}}\n</tool_call>'
        if prompt.endswith("<tool_call>"):
            return '\n{"name": "get_weather", "arguments": {"city": "Oslo"}}\n</tool_call>'
        return TWO_CALLS["json"]

    server = tool_server(respond)
    named = ask(server, stream, tools=TOOLS, tool_choice={"type": "function", "function": {"name": "get_time"}})
    assert parsed(named["tool_calls"]) == [("get_time", {"zone": "UTC"})] and named["finish_reason"] == "tool_calls"
    required = ask(server, stream, tools=TOOLS, tool_choice="required")
    assert parsed(required["tool_calls"]) == [("get_weather", {"city": "Oslo"})]
    none = ask(server, stream, tools=TOOLS, tool_choice="none")
    assert none["tool_calls"] == [] and none["content"] == TWO_CALLS["json"] and none["finish_reason"] == "stop"
    single = ask(server, stream, tools=TOOLS, parallel_tool_calls=False)
    assert parsed(single["tool_calls"]) == EXPECTED_CALLS[:1]


def test_tool_choice_that_cannot_be_honoured_is_a_400(tool_server):
    server = tool_server(lambda prompt: "ok", spec=ModelSpec(model="scripted", tool_call_parser="muse_spark"))
    with pytest.raises(openai.BadRequestError) as err:
        client_for(server).chat.completions.create(
            model="m", messages=QUESTION, tools=TOOLS, tool_choice={"type": "function", "function": {"name": "get_time"}}
        )
    assert err.value.status_code == 400 and err.value.body["param"] == "tool_choice"
    off = tool_server(lambda prompt: "ok", spec=ModelSpec(model="scripted", tool_call_parser="none"))
    with pytest.raises(openai.BadRequestError) as err:
        client_for(off).chat.completions.create(model="m", messages=QUESTION, tools=TOOLS)
    assert err.value.body["param"] == "tools"


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("single", [False, True], ids=["split", "single"])
def test_reasoning_content(tool_server, stream, single):
    server = tool_server(lambda prompt: REASONED, single_token_markers=single)
    message = ask(server, stream)
    assert message["reasoning_content"] == THOUGHT and message["content"] == REASONED_ANSWER
    assert message["usage"]["completion_tokens_details"]["reasoning_tokens"] > 0


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_reasoning_strip(tool_server, stream):
    server = tool_server(lambda prompt: REASONED, settings=EngineSettings(temperature=0.0, reasoning="strip"))
    message = ask(server, stream)
    assert not message["reasoning_content"] and message["content"] == REASONED_ANSWER


def test_reasoning_switches(tool_server):
    respond = Recording(lambda prompt: "4")
    server = tool_server(respond, thinking="opened")
    ask(server, False, reasoning_effort="none")
    assert respond.prompts[-1].endswith("<think>\n\n</think>\n\n")
    ask(server, False, extra_body={"chat_template_kwargs": {"enable_thinking": False}}, messages=[{"role": "user", "content": "again"}])
    assert respond.prompts[-1].endswith("<think>\n\n</think>\n\n")
    ask(server, False, reasoning_effort="high", messages=[{"role": "user", "content": "think"}])
    assert respond.prompts[-1].endswith("<|im_start|>assistant\n<think>\n")


def test_allowed_tools_narrow_what_the_model_sees(tool_server):
    respond = Recording(lambda prompt: "ok")
    server = tool_server(respond)
    choice = {"type": "allowed_tools", "allowed_tools": {"mode": "auto", "tools": [{"type": "function", "function": {"name": "get_time"}}]}}
    ask(server, False, tools=TOOLS, tool_choice=choice)
    assert '"name": "get_time"' in respond.prompts[-1] and "get_weather" not in respond.prompts[-1]
    bad = {"type": "allowed_tools", "allowed_tools": {"mode": "auto", "tools": [{"type": "function", "function": {"name": "nope"}}]}}
    with pytest.raises(openai.BadRequestError) as err:
        client_for(server).chat.completions.create(model="m", messages=QUESTION, tools=TOOLS, tool_choice=bad)
    assert err.value.body["param"] == "tool_choice.allowed_tools.tools[0].function.name"


def test_azure_chat_route(tool_server):
    server = tool_server(lambda prompt: TWO_CALLS["json"])
    azure = openai.AzureOpenAI(azure_endpoint=server.url, api_version="2024-10-21", api_key="k", max_retries=0)
    r = azure.chat.completions.create(model="my-deployment", messages=QUESTION, tools=TOOLS)
    assert [(c.function.name, json.loads(c.function.arguments)) for c in r.choices[0].message.tool_calls] == EXPECTED_CALLS
    assert r.choices[0].finish_reason == "tool_calls"

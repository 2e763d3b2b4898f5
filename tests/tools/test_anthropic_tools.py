"""Tool use and thinking over Anthropic Messages: tool_use blocks, input_json_delta, a round trip."""

from __future__ import annotations

import anthropic
import httpx
import pytest

from mlxcli.engine.engine import EngineSettings
from tests.support.anthropic_stream import check_stream
from tests.support.models import Recording
from tests.tools.replies import (
    ANSWER, CALL_IN_PROMPT, EXPECTED_CALLS, FORMAT_IDS, FORMATS, REASONED, REASONED_ANSWER, RESULT, RESULT_IN_PROMPT,
    THOUGHT, TIME_TOOL, TWO_CALLS, TWO_CALLS_TEXT, WEATHER_TOOL, round_trip,
)

TOOLS = [{"name": t["name"], "description": t["description"], "input_schema": t["parameters"]} for t in (WEATHER_TOOL, TIME_TOOL)]
QUESTION = [{"role": "user", "content": "Weather and time in Paris?"}]


def ask(server, stream: bool, **body) -> dict:
    """One message, streamed (grammar-checked, and through the SDK's helper) or not; the message as a dict."""
    client = anthropic.Anthropic(base_url=server.url, api_key="unused", max_retries=0)
    body = {"model": "m", "max_tokens": 200, "messages": QUESTION, **body}
    if not stream:
        return client.messages.create(**body).model_dump()
    with httpx.stream("POST", server.url + "/v1/messages", json={**body, "stream": True}) as r:
        assert r.status_code == 200
        checked = check_stream(r.read())
    assert checked.error is None
    with client.messages.stream(**body) as s:
        sdk = s.get_final_message()
    assert [b.type for b in sdk.content] == [b["type"] for b in checked.message["content"]]
    assert [b.input for b in sdk.content if b.type == "tool_use"] == [b["input"] for b in checked.message["content"] if b["type"] == "tool_use"]
    assert sdk.stop_reason == checked.message["stop_reason"]
    return checked.message


def blocks(message: dict, kind: str) -> list[dict]:
    return [b for b in message["content"] if b["type"] == kind]


def calls(message: dict) -> list[tuple]:
    return [(b["name"], b["input"]) for b in blocks(message, "tool_use")]


def text(message: dict) -> str:
    return "".join(b["text"] for b in blocks(message, "text"))


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("calls_format, single", FORMATS, ids=FORMAT_IDS)
def test_two_tool_use_blocks_after_text(tool_server, calls_format, single, stream):
    server = tool_server(lambda prompt: TWO_CALLS[calls_format], calls=calls_format, single_token_markers=single)
    message = ask(server, stream, tools=TOOLS)
    assert [b["type"] for b in message["content"]] == ["text", "tool_use", "tool_use"]
    assert text(message) == TWO_CALLS_TEXT and calls(message) == EXPECTED_CALLS
    assert message["stop_reason"] == "tool_use"
    assert all(b["id"].startswith("toolu_") for b in blocks(message, "tool_use"))


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_round_trip(tool_server, stream):
    respond = Recording(round_trip)
    server = tool_server(respond)
    first = ask(server, stream, tools=TOOLS)
    assert first["stop_reason"] == "tool_use"
    (use,) = blocks(first, "tool_use")
    assert (use["name"], use["input"]) == ("get_weather", {"city": "Paris"})
    messages = QUESTION + [
        {"role": "assistant", "content": [{"type": b["type"], **{k: b[k] for k in ("text", "id", "name", "input") if k in b}} for b in first["content"]]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use["id"], "content": RESULT}]},
    ]
    second = ask(server, stream, tools=TOOLS, messages=messages)
    assert text(second) == ANSWER and second["stop_reason"] == "end_turn"
    prompt = respond.prompts[-1]
    assert CALL_IN_PROMPT in prompt and RESULT_IN_PROMPT in prompt
    assert prompt.index(CALL_IN_PROMPT) < prompt.index(RESULT_IN_PROMPT)


def test_tool_choice(tool_server):
    def respond(prompt: str) -> str:
        if prompt.endswith('"name": "get_time", "arguments": '):
            return '{"zone": "UTC"}}\n</tool_call>'
        if prompt.endswith("<tool_call>"):
            return '\n{"name": "get_weather", "arguments": {"city": "Oslo"}}\n</tool_call>'
        return TWO_CALLS["json"]

    server = tool_server(respond)
    assert calls(ask(server, True, tools=TOOLS, tool_choice={"type": "tool", "name": "get_time"})) == [("get_time", {"zone": "UTC"})]
    assert calls(ask(server, False, tools=TOOLS, tool_choice={"type": "any"})) == [("get_weather", {"city": "Oslo"})]
    assert calls(ask(server, False, tools=TOOLS, tool_choice={"type": "auto", "disable_parallel_tool_use": True})) == EXPECTED_CALLS[:1]
    none = ask(server, False, tools=TOOLS, tool_choice={"type": "none"})
    assert not blocks(none, "tool_use") and text(none) == TWO_CALLS["json"] and none["stop_reason"] == "end_turn"


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_thinking_block(tool_server, stream):
    server = tool_server(lambda prompt: REASONED)
    message = ask(server, stream)
    assert [b["type"] for b in message["content"]] == ["thinking", "text"]
    (thinking,) = blocks(message, "thinking")
    assert thinking["thinking"] == THOUGHT and thinking["signature"]
    assert text(message) == REASONED_ANSWER


def test_thinking_then_tool_use_then_the_thinking_echoed_back(tool_server):
    respond = Recording(lambda prompt: ANSWER if "<tool_response>" in prompt else f"<think>\n{THOUGHT}\n</think>\n\n" + TWO_CALLS["json"])
    server = tool_server(respond)
    first = ask(server, True, tools=TOOLS)
    assert [b["type"] for b in first["content"]] == ["thinking", "text", "tool_use", "tool_use"]
    results = [{"type": "tool_result", "tool_use_id": b["id"], "content": f"result of {b['name']}"} for b in blocks(first, "tool_use")]
    second = ask(server, False, tools=TOOLS, messages=QUESTION + [{"role": "assistant", "content": first["content"]}, {"role": "user", "content": results}])
    assert text(second) == ANSWER
    assert f"<|im_start|>assistant\n<think>\n{THOUGHT}\n</think>\n\n{TWO_CALLS_TEXT}\n<tool_call>" in respond.prompts[-1]
    assert "<tool_response>\nresult of get_weather\n</tool_response>\n<tool_response>\nresult of get_time\n</tool_response>" in respond.prompts[-1]


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_thinking_strip(tool_server, stream):
    server = tool_server(lambda prompt: REASONED, settings=EngineSettings(temperature=0.0, reasoning="strip"))
    message = ask(server, stream)
    assert [b["type"] for b in message["content"]] == ["text"] and text(message) == REASONED_ANSWER


def test_thinking_switch(tool_server):
    respond = Recording(lambda prompt: "4")
    server = tool_server(respond, thinking="opened")
    ask(server, False, thinking={"type": "disabled"})
    assert respond.prompts[-1].endswith("<think>\n\n</think>\n\n")
    ask(server, False, thinking={"type": "enabled", "budget_tokens": 1024}, messages=[{"role": "user", "content": "again"}])
    assert respond.prompts[-1].endswith("<|im_start|>assistant\n<think>\n")

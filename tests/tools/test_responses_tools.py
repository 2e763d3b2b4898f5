"""Tool calls and reasoning over the OpenAI Responses API: function_call and reasoning items, a round trip."""

from __future__ import annotations

import json

import httpx
import openai
import pytest

from mlxcli.engine.engine import EngineSettings
from tests.support.models import Recording
from tests.support.streams import check_responses_stream
from tests.tools.replies import (
    ANSWER, CALL_IN_PROMPT, EXPECTED_CALLS, FORMAT_IDS, FORMATS, REASONED, REASONED_ANSWER, RESULT, RESULT_IN_PROMPT,
    THOUGHT, TIME_TOOL, TWO_CALLS, TWO_CALLS_TEXT, WEATHER_TOOL, round_trip,
)

TOOLS = [{"type": "function", **WEATHER_TOOL}, {"type": "function", **TIME_TOOL}]
QUESTION = "Weather and time in Paris?"


def ask(server, stream: bool, **body) -> dict:
    """One response, streamed (grammar-checked, and through the SDK's helper) or not; the response as a dict."""
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)
    body = {"model": "m", "input": QUESTION, **body}
    if not stream:
        return client.responses.create(**body).model_dump()
    with httpx.stream("POST", server.url + "/v1/responses", json={**body, "stream": True}) as r:
        assert r.status_code == 200
        final = check_responses_stream(r.read().decode())
    with client.responses.stream(**body) as s:
        sdk = s.get_final_response()
    assert [i.type for i in sdk.output] == [i["type"] for i in final["output"]]
    assert sdk.output_text == "".join(p["text"] for i in final["output"] if i["type"] == "message" for p in i["content"])
    return final


def items(response: dict, kind: str) -> list[dict]:
    return [i for i in response["output"] if i["type"] == kind]


def calls(response: dict) -> list[tuple]:
    return [(i["name"], json.loads(i["arguments"])) for i in items(response, "function_call")]


def text(response: dict) -> str:
    return "".join(p["text"] for i in items(response, "message") for p in i["content"])


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("calls_format, single", FORMATS, ids=FORMAT_IDS)
def test_two_calls_after_text(tool_server, calls_format, single, stream):
    server = tool_server(lambda prompt: TWO_CALLS[calls_format], calls=calls_format, single_token_markers=single)
    response = ask(server, stream, tools=TOOLS)
    assert [i["type"] for i in response["output"]] == ["message", "function_call", "function_call"]
    assert text(response) == TWO_CALLS_TEXT and calls(response) == EXPECTED_CALLS
    assert response["status"] == "completed"
    for item in items(response, "function_call"):
        assert item["id"].startswith("fc_") and item["call_id"] and item["status"] == "completed"


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("continued", [True, False], ids=["previous_response_id", "full-input"])
def test_round_trip(tool_server, stream, continued):
    respond = Recording(round_trip)
    server = tool_server(respond)
    first = ask(server, stream, tools=TOOLS)
    (call,) = items(first, "function_call")
    assert (call["name"], json.loads(call["arguments"])) == ("get_weather", {"city": "Paris"})
    result = {"type": "function_call_output", "call_id": call["call_id"], "output": RESULT}
    if continued:
        second = ask(server, stream, tools=TOOLS, previous_response_id=first["id"], input=[result])
    else:
        echoed = [{k: v for k, v in i.items() if v is not None} for i in first["output"]]  # what the client got back
        second = ask(server, stream, tools=TOOLS, input=[{"role": "user", "content": QUESTION}, *echoed, result])
    assert text(second) == ANSWER and not items(second, "function_call")
    prompt = respond.prompts[-1]
    assert CALL_IN_PROMPT in prompt and RESULT_IN_PROMPT in prompt
    assert prompt.index(CALL_IN_PROMPT) < prompt.index(RESULT_IN_PROMPT)


def test_tool_choice_and_parallel_calls(tool_server):
    def respond(prompt: str) -> str:
        if prompt.endswith('"name": "get_time", "arguments": '):
            return '{"zone": "UTC"}}\n</tool_call>'
        return TWO_CALLS["json"]

    server = tool_server(respond)
    assert calls(ask(server, True, tools=TOOLS, tool_choice={"type": "function", "name": "get_time"})) == [("get_time", {"zone": "UTC"})]
    assert calls(ask(server, False, tools=TOOLS, parallel_tool_calls=False)) == EXPECTED_CALLS[:1]
    none = ask(server, False, tools=TOOLS, tool_choice="none")
    assert not items(none, "function_call") and text(none) == TWO_CALLS["json"]


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_reasoning_item(tool_server, stream):
    server = tool_server(lambda prompt: REASONED)
    response = ask(server, stream)
    assert [i["type"] for i in response["output"]] == ["reasoning", "message"]
    (reasoning,) = items(response, "reasoning")
    assert reasoning["id"].startswith("rs_") and reasoning["content"] == [{"type": "reasoning_text", "text": THOUGHT}]
    assert text(response) == REASONED_ANSWER
    assert response["usage"]["output_tokens_details"]["reasoning_tokens"] > 0


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_reasoning_strip(tool_server, stream):
    server = tool_server(lambda prompt: REASONED, settings=EngineSettings(temperature=0.0, reasoning="strip"))
    response = ask(server, stream)
    assert [i["type"] for i in response["output"]] == ["message"] and text(response) == REASONED_ANSWER


def test_reasoning_effort_switches_thinking(tool_server):
    respond = Recording(lambda prompt: "4")
    server = tool_server(respond, thinking="opened")
    ask(server, False, reasoning={"effort": "minimal"})
    assert respond.prompts[-1].endswith("<think>\n\n</think>\n\n")
    ask(server, False, reasoning={"effort": "medium"}, input="again")
    assert respond.prompts[-1].endswith("<|im_start|>assistant\n<think>\n")


def test_allowed_tools_narrow_what_the_model_sees(tool_server):
    respond = Recording(lambda prompt: "ok")
    server = tool_server(respond)
    ask(server, False, tools=TOOLS, tool_choice={"type": "allowed_tools", "mode": "auto", "tools": [{"type": "function", "name": "get_weather"}]})
    assert '"name": "get_weather"' in respond.prompts[-1] and "get_time" not in respond.prompts[-1]

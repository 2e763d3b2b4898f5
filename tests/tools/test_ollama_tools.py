"""Tool calls and thinking over the Ollama API: whole calls with object arguments, a round trip in
which the tool result names only its tool, ``think`` and ``message.thinking``; the official library,
LangChain's ChatOllama and the NDJSON checker as judges."""

from __future__ import annotations

import httpx
import ollama
import pytest

from tests.support.models import Recording
from tests.support.ndjson import check_final, check_ndjson
from tests.tools.replies import (
    ANSWER, CALL_IN_PROMPT, EXPECTED_CALLS, REASONED, REASONED_ANSWER, RESULT, RESULT_IN_PROMPT, THOUGHT, TIME_TOOL,
    TWO_CALLS, TWO_CALLS_TEXT, WEATHER_TOOL, round_trip,
)

TOOLS = [{"type": "function", "function": tool} for tool in (WEATHER_TOOL, TIME_TOOL)]
QUESTION = [{"role": "user", "content": "Weather and time in Paris?"}]


def chat(server, stream: bool, **body) -> dict:
    """One chat answer as a dict: streamed (checked line by line, and through the library) or not."""
    body = {"model": "m", "messages": QUESTION, **body}
    client = ollama.Client(host=server.url)
    if not stream:
        answer = httpx.post(server.url + "/api/chat", json={**body, "stream": False}, timeout=60).json()
        check_final(answer)
        assert client.chat(**body, stream=False).message.model_dump(exclude_none=True)["content"] == answer["message"]["content"]
        return answer["message"]
    checked = check_ndjson(httpx.post(server.url + "/api/chat", json=body, timeout=60).content)
    assert checked.error is None
    parts = list(client.chat(**body, stream=True))
    assert "".join(p.message.content or "" for p in parts) == checked.text
    assert [c.function.arguments for p in parts for c in p.message.tool_calls or []] == [c["function"]["arguments"] for c in checked.tool_calls]
    message = {"role": "assistant", "content": checked.text}
    if checked.thinking:
        message["thinking"] = checked.thinking
    if checked.tool_calls:
        message["tool_calls"] = checked.tool_calls
    return message


def calls(message: dict) -> list[tuple]:
    return [(c["function"]["name"], c["function"]["arguments"]) for c in message.get("tool_calls", [])]


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_two_whole_tool_calls(tool_server, stream):
    server = tool_server(lambda prompt: TWO_CALLS["json"])
    message = chat(server, stream, tools=TOOLS)
    assert message["content"] == TWO_CALLS_TEXT and calls(message) == EXPECTED_CALLS
    assert [c["function"]["index"] for c in message["tool_calls"]] == [0, 1]
    assert all(c["id"].startswith("call_") for c in message["tool_calls"])


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_round_trip_with_the_tool_named(tool_server, stream):
    respond = Recording(round_trip)
    server = tool_server(respond)
    first = chat(server, stream, tools=TOOLS[:1])
    assert calls(first) == [("get_weather", {"city": "Paris"})]
    # As Ollama's own clients send it: the call's arguments as an object, the result with its tool's name only.
    messages = QUESTION + [
        {"role": "assistant", "content": first["content"], "tool_calls": [{"function": c["function"]} for c in first["tool_calls"]]},
        {"role": "tool", "content": RESULT, "tool_name": "get_weather"},
    ]
    second = chat(server, stream, tools=TOOLS[:1], messages=messages)
    assert second["content"] == ANSWER and "tool_calls" not in second
    prompt = respond.prompts[-1]
    assert CALL_IN_PROMPT in prompt and RESULT_IN_PROMPT in prompt and prompt.index(CALL_IN_PROMPT) < prompt.index(RESULT_IN_PROMPT)


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_think(tool_server, stream):
    respond = Recording(lambda prompt: REASONED)
    server = tool_server(respond)
    message = chat(server, stream, think=True)
    assert (message["thinking"], message["content"]) == (THOUGHT, REASONED_ANSWER)
    assert not respond.prompts[-1].endswith("<think>\n\n</think>\n\n")  # thinking left on
    chat(server, stream, think=False, messages=[{"role": "user", "content": "And in Rome?"}])  # not a prefix of the first
    assert respond.prompts[-1].endswith("<think>\n\n</think>\n\n")  # the template's switch turned it off
    answer = ollama.Client(host=server.url).generate(model="m", prompt="What is 2 + 2?", think="high", stream=False)
    assert (answer.thinking, answer.response) == (THOUGHT, REASONED_ANSWER)


def test_langchain_tool_calls_and_reasoning(tool_server):
    from langchain_core.messages import HumanMessage, ToolMessage
    from langchain_ollama import ChatOllama

    server = tool_server(round_trip)
    llm = ChatOllama(model="m", base_url=server.url, temperature=0).bind_tools([WEATHER_TOOL])
    first = llm.invoke([HumanMessage("Weather in Paris?")])
    assert [(c["name"], c["args"]) for c in first.tool_calls] == [("get_weather", {"city": "Paris"})]
    second = llm.invoke([HumanMessage("Weather in Paris?"), first, ToolMessage(RESULT, tool_call_id=first.tool_calls[0]["id"])])
    assert second.content == ANSWER

    thinker = ChatOllama(model="m", base_url=tool_server(lambda prompt: REASONED).url, reasoning=True)
    answer = thinker.invoke("What is 2 + 2?")
    assert answer.content == REASONED_ANSWER and answer.additional_kwargs["reasoning_content"] == THOUGHT

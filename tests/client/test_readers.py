"""Each API's stream read back into neutral events, against the real server (scripted model, exact output).

Every test runs over the three APIs: what `mlxcli serve` encodes, the client must decode to the
events the engine produced: text, reasoning, tool calls, the finish reason, usage and errors.
"""

from __future__ import annotations

import json
import re
import threading

import pytest

from mlxcli.client import NAMES, Client, ServerError, ServerUnreachable
from mlxcli.core.collect import collect
from mlxcli.core.events import Finish, ReasoningDelta, TextDelta, ToolCallDelta
from mlxcli.core.request import ChatRequest, Message, Sampling, ToolCall, ToolSpec
from mlxcli.engine.engine import EngineSettings
from mlxcli.server.settings import ServerSettings
from tests.support.http import wait_for
from tests.support.models import Fail, Recording, scripted_of
from tests.tools.replies import (
    ANSWER, EXPECTED_CALLS, REASONED, REASONED_ANSWER, RESULT, RESULT_IN_PROMPT, THOUGHT, TIME_TOOL, TWO_CALLS,
    TWO_CALLS_TEXT, WEATHER_TOOL, round_trip,
)

REPLY = "one two three four five six"
TOOLS = [ToolSpec(**WEATHER_TOOL), ToolSpec(**TIME_TOOL)]
apis = pytest.mark.parametrize("api", NAMES)
# The error types each API's error bodies carry (Ollama's are a message alone).
ERROR_TYPES = {
    "chat": {"server": "server_error", "invalid": "invalid_request_error", "overloaded": "server_error"},
    "responses": {"server": "server_error", "invalid": "invalid_request_error", "overloaded": "server_error"},
    "anthropic": {"server": "api_error", "invalid": "invalid_request_error", "overloaded": "overloaded_error"},
    "ollama": {"server": None, "invalid": None, "overloaded": None},
}


def question(text: str, **sampling) -> ChatRequest:
    return ChatRequest(messages=[Message("user", text)], sampling=Sampling(**sampling))


def ask(server, api: str, request: ChatRequest, **options) -> list:
    with Client(server.url, api=api, **options) as client, client.stream(request, model="m") as events:
        received = list(events)
        assert events.usage_reported
    assert [type(e) for e in received].count(Finish) == 1 and isinstance(received[-1], Finish)
    return received


@pytest.fixture
def text_engine(scripted_engine):
    return scripted_engine(lambda prompt: REPLY)


@apis
def test_text_finish_and_usage(api, text_engine, serve):
    server = serve(text_engine)
    request = question("hello")
    events = ask(server, api, request)
    assert sum(isinstance(e, TextDelta) for e in events) > 1  # streamed, not in one piece
    assert collect(events).text == REPLY and events[-1].reason == "stop"
    prompt = len(text_engine.render(request).tokens)
    reply = len(text_engine.registry.default.tokenizer.encode(REPLY, add_special_tokens=False))
    usage = events[-1].usage
    assert (usage.prompt_tokens, usage.completion_tokens, usage.cached_tokens, usage.reasoning_tokens) == (prompt, reply, 0, 0)
    again = ask(server, api, request)[-1].usage  # the prompt cache has it now
    assert again.prompt_tokens == prompt
    if api != "ollama":  # Ollama reports no cached count
        assert 0 < again.cached_tokens < prompt
    assert events[-1].timings.prefill > 0 and events[-1].timings.decode >= 0  # as the client saw them


@apis
def test_max_tokens_cut_off(api, text_engine, serve):
    events = ask(serve(text_engine), api, question("hello", max_tokens=3))
    assert events[-1].reason == "length" and events[-1].usage.completion_tokens == 3
    assert REPLY.startswith(collect(events).text)


@pytest.mark.parametrize("api", ["chat", "anthropic"])  # the Responses API has no stop sequences
def test_stop_sequences(api, text_engine, serve):
    events = ask(serve(text_engine), api, question("hello", stop=["nowhere", " four"]))
    assert collect(events).text == "one two three" and events[-1].reason == "stop"
    if api == "anthropic":
        assert events[-1].stop_sequence == " four"  # only Anthropic reports which one


@apis
def test_reasoning(api, tool_server):
    events = ask(tool_server(lambda prompt: REASONED), api, question("What is 2 + 2?"))
    kinds = [type(e) for e in events if not isinstance(e, Finish)]
    assert kinds.index(TextDelta) > max(i for i, k in enumerate(kinds) if k is ReasoningDelta)  # reasoning first
    completion = collect(events)
    assert (completion.reasoning, completion.text) == (THOUGHT, REASONED_ANSWER)
    if api not in ("anthropic", "ollama"):  # their usage has no reasoning count
        assert events[-1].usage.reasoning_tokens > 0


@apis
def test_tool_calls(api, tool_server):
    server = tool_server(lambda prompt: TWO_CALLS["json"])
    events = ask(server, api, ChatRequest(messages=[Message("user", "Weather and time in Paris?")], tools=TOOLS))
    completion = collect(events)
    assert completion.text == TWO_CALLS_TEXT and events[-1].reason == "tool_calls"
    assert [(c.name, json.loads(c.arguments)) for c in completion.tool_calls] == EXPECTED_CALLS
    prefix = "toolu_" if api == "anthropic" else "call_"
    assert all(c.id.startswith(prefix) for c in completion.tool_calls) and len({c.id for c in completion.tool_calls}) == 2
    deltas = [e for e in events if isinstance(e, ToolCallDelta)]
    firsts = {}
    for d in deltas:  # name and id once, in the first delta of each call; indices from 0
        if d.index not in firsts:
            firsts[d.index] = d
            assert d.name and d.id
        else:
            assert d.name is None and d.id is None
    assert sorted(firsts) == [0, 1]


@apis
def test_tool_results_round_trip(api, tool_server):
    respond = Recording(round_trip)
    server = tool_server(respond)
    conversation = [Message("user", "Weather in Paris?")]
    first = collect(ask(server, api, ChatRequest(messages=conversation, tools=TOOLS[:1])))
    (call,) = first.tool_calls
    conversation += [
        Message("assistant", first.text, tool_calls=[ToolCall(call.id, call.name, call.arguments)]),
        Message("tool", RESULT, tool_call_id=call.id),
    ]
    second = ask(server, api, ChatRequest(messages=conversation, tools=TOOLS[:1]))
    assert collect(second).text == ANSWER and second[-1].reason == "stop"
    assert RESULT_IN_PROMPT in respond.prompts[-1]


@apis
def test_a_failure_half_way_is_a_server_error(api, scripted_engine, serve):
    server = serve(scripted_engine(lambda prompt: Fail("Half an answer")))
    received = []
    with Client(server.url, api=api) as client:
        with pytest.raises(ServerError, match="generation failed") as info:
            for event in client.stream(question("hi"), model="m"):
                received.append(event)
    assert info.value.http_status is None and info.value.error_type == ERROR_TYPES[api]["server"]
    assert not any(isinstance(e, Finish) for e in received)


@apis
def test_a_refusal_is_a_server_error_with_status_and_message(api, scripted_engine, serve):
    server = serve(scripted_engine(lambda prompt: REPLY, context_window=64))
    with Client(server.url, api=api) as client, pytest.raises(ServerError) as info:
        client.stream(question("word " * 200), model="m")
    err = info.value
    assert err.http_status == 400 and err.error_type == ERROR_TYPES[api]["invalid"]
    expected = "prompt is too long: .* tokens > 64 maximum" if api == "anthropic" else "maximum context length is 64"
    assert err.message.startswith("the server answered 400: ") and re.search(expected, err.message)


def test_overload_is_a_server_error_in_each_shape(scripted_engine, serve):
    # One generating, one waiting: the server is full.
    engine = scripted_engine(lambda prompt: " ".join(f"w{i}" for i in range(500)), EngineSettings(temperature=0.0, max_batch=1, max_queue=1))
    scripted_of(engine).step_delay = 0.02  # a slow model: the first answer is still streaming below
    server = serve(engine)
    with Client(server.url) as busy, busy.stream(question("long"), model="m") as first, busy.stream(question("next"), model="m"):
        assert isinstance(next(iter(first)), TextDelta)
        for api, status in (("chat", 503), ("responses", 503), ("anthropic", 529), ("ollama", 503)):
            with Client(server.url, api=api) as client, pytest.raises(ServerError) as info:
                client.stream(question("hi"), model="m")
            err = info.value
            assert (err.http_status, err.overloaded, err.retry_after) == (status, True, 1.0), err.message
            assert err.error_type == ERROR_TYPES[api]["overloaded"]
    assert wait_for(lambda: engine.stats()["active_requests"] == 0)


@apis
def test_closing_the_stream_stops_generation(api, scripted_engine, serve):
    engine = scripted_engine(lambda prompt: " ".join(f"w{i}" for i in range(400)) + " THE END")
    scripted_of(engine).step_delay = 0.02
    server = serve(engine)
    received = ""
    with Client(server.url, api=api) as client, client.stream(question("long"), model="m") as events:
        for event in events:
            received += event.text
            if len(received) > 20:
                break
    assert wait_for(lambda: engine.stats()["active_requests"] == 0, timeout=5)
    assert "THE END" not in received


@apis
def test_api_keys(api, text_engine, serve):
    server = serve(text_engine, ServerSettings(port=0, api_keys=["sesame"]))
    with Client(server.url, api=api) as client, pytest.raises(ServerError, match=r"answered 401: .*\(pass --api-key\)"):
        client.models()
    assert collect(ask(server, api, question("hi"), api_key="sesame")).text == REPLY


def test_models_and_get_json(text_engine, serve):
    server = serve(text_engine, ServerSettings(port=0))
    with Client(server.url + "/v1/") as client:
        assert client.models() == ["scripted"]
        assert client.get_json("/mlxcli/ps")["models"][0]["name"] == "scripted"
        with pytest.raises(ServerError, match="answered 404") as info:
            client.get_json("/nowhere")
        assert info.value.http_status == 404


def test_an_unreachable_server():
    with Client("127.0.0.1:9") as client, pytest.raises(ServerUnreachable) as info:
        client.models()
    assert info.value.message == f"cannot reach http://127.0.0.1:9: {info.value.cause}" and info.value.http_status is None
    assert "refused" in info.value.cause.lower()


def test_three_apis_at_once(scripted_engine, serve):
    """Answers streamed side by side (batched by the engine) each come back whole."""
    engine = scripted_engine(lambda prompt: f"Answer to {prompt.count('q')}.", EngineSettings(temperature=0.0, max_batch=4))
    server = serve(engine)
    results: dict[str, list] = {}

    def one(api: str) -> None:
        results[api] = ask(server, api, question("q" * len(api)))

    threads = [threading.Thread(target=one, args=(api,)) for api in NAMES]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert {api: collect(events).text for api, events in results.items()} == {
        api: f"Answer to {len(api)}." for api in NAMES}

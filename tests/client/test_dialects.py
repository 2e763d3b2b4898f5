"""Streams as other servers write them (and malformed ones), through a mock transport: the readers
take what the specs allow beyond mlxcli's own encoders, and refuse what is broken."""

from __future__ import annotations

import httpx
import orjson
import pytest

from mlxcli.client import BadResponse, Client, ServerError
from mlxcli.core.collect import collect
from mlxcli.core.events import Finish, ReasoningDelta, TextDelta, Usage
from mlxcli.core.request import ChatRequest, Message

QUESTION = ChatRequest(messages=[Message("user", "q")])


def sse(*events) -> bytes:
    """Frames: a dict is ``data:`` JSON, a (name, dict) pair a named event, bytes go as they are."""
    out = b""
    for e in events:
        if isinstance(e, tuple):
            out += b"event: " + e[0].encode() + b"\ndata: " + orjson.dumps(e[1]) + b"\n\n"
        else:
            out += b"data: " + (e if isinstance(e, bytes) else orjson.dumps(e)) + b"\n\n"
    return out


def answering(body: bytes, api: str = "chat", status: int = 200, seen: list | None = None) -> Client:
    def handle(request: httpx.Request) -> httpx.Response:
        if seen is not None:
            seen.append(request)
        return httpx.Response(status, content=body, headers={"Content-Type": "text/event-stream"})

    return Client("http://other.example", api=api, api_key="k", transport=httpx.MockTransport(handle))


def read(body: bytes, api: str = "chat") -> list:
    with answering(body, api) as client:
        stream = client.stream(QUESTION, model="m")
        events = list(stream)
        events.append(stream.usage_reported)
        return events


def delta(**fields) -> dict:
    return {"choices": [{"index": 0, "delta": fields, "finish_reason": None}]}


def finish(reason: str = "stop") -> dict:
    return {"choices": [{"index": 0, "delta": {}, "finish_reason": reason}]}


# ---- Chat Completions ------------------------------------------------------------------------


def test_chat_reasoning_in_both_dialects_usage_and_no_done():
    body = b": keep-alive\n\n" + sse(
        delta(role="assistant", content=""),
        delta(reasoning_content="vLLM style. "),
        delta(reasoning="Ollama style."),
        delta(content="Answer"),
        {"choices": [{"index": 1, "delta": {"content": "second choice"}, "finish_reason": None}]},  # n > 1: ignored
        finish("length"),
        {"choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 4,
                                  "prompt_tokens_details": None, "completion_tokens_details": {"reasoning_tokens": 2}}},
    )
    *events, reported = read(body)
    assert events[:3] == [ReasoningDelta("vLLM style. "), ReasoningDelta("Ollama style."), TextDelta("Answer")]
    end = events[-1]
    assert reported and end.reason == "length"
    assert (end.usage.prompt_tokens, end.usage.completion_tokens, end.usage.reasoning_tokens) == (7, 4, 2)


def test_chat_without_usage_reports_none():
    *events, reported = read(sse(delta(content="Hi"), finish("content_filter"), b"[DONE]"))
    assert not reported and isinstance(events[-1], Finish)
    assert (events[-1].reason, events[-1].usage) == ("stop", Usage())


@pytest.mark.parametrize(
    "body, error, message",
    [
        (sse(delta(content="Half")), BadResponse, "before the answer was complete"),
        (sse(delta(content="Half"), b"[DONE]"), BadResponse, "before the answer was complete"),
        (sse(delta(content="Half"), {"error": {"message": "out of memory", "type": "server_error"}}), ServerError, "^out of memory$"),
        (sse(b"{oops"), BadResponse, "not JSON"),
    ],
)
def test_chat_streams_cut_short_or_reporting_an_error(body, error, message):
    with pytest.raises(error, match=message):
        read(body)


@pytest.mark.parametrize(
    "body, message",
    [
        (b'{"error": {"message": "model \'m\' not found"}}', "answered 404: model 'm' not found"),
        (b'{"detail": "Not Found"}', "answered 404: Not Found"),
        (b"plain text", "answered 404: plain text"),
    ],
)
def test_error_bodies(body, message):
    with answering(body, status=404) as client, pytest.raises(ServerError, match=message) as info:
        client.stream(QUESTION, model="m")
    assert info.value.http_status == 404


def test_what_is_sent():
    seen: list[httpx.Request] = []
    with answering(sse(finish(), b"[DONE]"), seen=seen) as client:
        list(client.stream(QUESTION, model="m"))
    (request,) = seen
    assert str(request.url) == "http://other.example/v1/chat/completions"
    assert request.headers["authorization"] == "Bearer k" and "x-api-key" not in request.headers
    assert orjson.loads(request.content)["messages"] == [{"role": "user", "content": "q"}]
    seen.clear()
    with answering(sse(("message_stop", {"type": "message_stop"})), api="anthropic", seen=seen) as client:
        list(client.stream(QUESTION, model="m"))
    assert str(seen[0].url) == "http://other.example/v1/messages"
    assert (seen[0].headers["x-api-key"], seen[0].headers["anthropic-version"]) == ("k", "2023-06-01")
    assert "authorization" not in seen[0].headers


# ---- Responses ---------------------------------------------------------------------------------


def event(kind: str, **payload) -> tuple:
    return kind, {"type": kind, **payload}


def test_responses_summary_reasoning_and_arguments_sent_whole():
    call = {"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "f", "arguments": ""}
    body = sse(
        event("response.created", response={"status": "in_progress", "output": []}),
        event("response.reasoning_summary_text.delta", item_id="rs_1", output_index=0, summary_index=0, delta="Hmm."),
        event("response.output_item.added", output_index=1, item=call),
        event("response.output_item.done", output_index=1, item={**call, "arguments": '{"a": 1}', "status": "completed"}),
        event("response.completed", response={"status": "completed", "usage": {
            "input_tokens": 5, "output_tokens": 3, "input_tokens_details": {"cached_tokens": 2}}}),
    )
    *events, reported = read(body, "responses")
    completion = collect(events)
    assert completion.reasoning == "Hmm." and [(c.id, c.name, c.arguments) for c in completion.tool_calls] == [
        ("call_1", "f", '{"a": 1}')]
    end = events[-1]
    assert reported and end.reason == "tool_calls" and (end.usage.prompt_tokens, end.usage.cached_tokens) == (5, 2)


@pytest.mark.parametrize(
    "terminal, expected",
    [
        (event("response.incomplete", response={"status": "incomplete", "incomplete_details": {"reason": "max_output_tokens"}}), "length"),
        (event("response.incomplete", response={"status": "incomplete", "incomplete_details": {"reason": "content_filter"}}), "stop"),
    ],
)
def test_responses_incomplete(terminal, expected):
    *events, reported = read(sse(event("response.output_text.delta", output_index=0, delta="Hi"), terminal), "responses")
    assert events[-1].reason == expected and not reported


@pytest.mark.parametrize(
    "terminal, message",
    [
        (event("response.failed", response={"status": "failed", "error": {"code": "server_error", "message": "boom"}}), "^boom$"),
        (event("error", code="rate_limit_exceeded", message="slow down", param=None), "^slow down$"),
        (event("response.output_text.delta", output_index=0, delta="Hi"), "before the answer was complete"),
    ],
)
def test_responses_failures(terminal, message):
    with pytest.raises(ServerError, match=message):
        read(sse(terminal), "responses")


# ---- Anthropic -----------------------------------------------------------------------------------


def test_anthropic_cache_reads_count_in_the_prompt_and_output_is_cumulative():
    body = sse(
        event("message_start", message={"content": [], "usage": {"input_tokens": 8, "cache_read_input_tokens": 3, "output_tokens": 1}}),
        event("content_block_start", index=0, content_block={"type": "thinking", "thinking": "", "signature": ""}),
        event("content_block_delta", index=0, delta={"type": "thinking_delta", "thinking": "Hmm."}),
        event("content_block_delta", index=0, delta={"type": "signature_delta", "signature": "abc"}),
        event("content_block_stop", index=0),
        event("ping"),
        event("content_block_start", index=1, content_block={"type": "tool_use", "id": "toolu_1", "name": "f", "input": {}}),
        event("content_block_delta", index=1, delta={"type": "input_json_delta", "partial_json": '{"a"'}),
        event("content_block_delta", index=1, delta={"type": "input_json_delta", "partial_json": ": 1}"}),
        event("content_block_stop", index=1),
        event("message_delta", delta={"stop_reason": "tool_use", "stop_sequence": None}, usage={"output_tokens": 9}),
        event("message_stop"),
    )
    *events, reported = read(body, "anthropic")
    completion = collect(events)
    assert completion.reasoning == "Hmm." and [(c.id, c.name, c.arguments) for c in completion.tool_calls] == [
        ("toolu_1", "f", '{"a": 1}')]
    end = events[-1]
    assert reported and end.reason == "tool_calls"
    assert (end.usage.prompt_tokens, end.usage.cached_tokens, end.usage.completion_tokens) == (11, 3, 9)


def test_anthropic_failures():
    with pytest.raises(ServerError, match="^Overloaded$") as info:
        read(sse(event("message_start", message={}), event("error", error={"type": "overloaded_error", "message": "Overloaded"})),
             "anthropic")
    assert info.value.overloaded
    with pytest.raises(BadResponse, match="before the answer was complete"):
        read(sse(event("message_start", message={})), "anthropic")

"""The streaming clients of the three protocols, against a small fake server of our own."""

from __future__ import annotations

import httpx
import pytest

from mlxcli.bench.clients import HttpTarget, root_url, sse_events
from mlxcli.core.request import ChatRequest, Message, Sampling
from tests.support.fake_openai import FakeServer

REQUEST = ChatRequest(
    messages=[Message("system", "Be brief."), Message("user", "Hello")], sampling=Sampling(temperature=0.0, max_tokens=32)
)


@pytest.mark.parametrize("url", ["http://h:1", "http://h:1/", "http://h:1/v1", "http://h:1/v1/", "h:1"])
def test_root_url(url):
    assert root_url(url) == "http://h:1"


def test_sse_events_framing():
    lines = [": keep-alive", "", "event: a", "data: {\"x\":", "data: 1}", "", "data: [DONE]", "", "data: tail"]
    assert list(sse_events(lines)) == [("a", '{"x":\n1}'), (None, "[DONE]"), (None, "tail")]


@pytest.mark.parametrize("api", ["chat", "responses", "anthropic"])
@pytest.mark.parametrize("usage", [True, False])
def test_tokens_from_usage_or_chunks(api, usage):
    with FakeServer(words=6, usage=usage, delay=0.01) as server:
        target = HttpTarget(server.url, api=api)
        result = target.run(REQUEST)
        target.close()
    assert result.ok, result.error
    assert result.text == " w0 w1 w2 w3 w4 w5" and result.chunks == 6
    assert result.output_tokens == 6
    assert result.token_source == ("usage" if usage else "chunks")
    assert result.prompt_tokens == (11 if usage else None)
    assert result.cached_tokens == (3 if usage else None)
    assert 0 < result.ttft <= result.latency
    assert result.decode_tps > 0  # five tokens over the five gaps between chunks
    path, body = server.requests[0]
    assert body["stream"] is True and body["model"] == "fake-model"  # discovered from GET /v1/models
    if api == "chat":
        assert path == "/v1/chat/completions" and body["stream_options"] == {"include_usage": True}
        assert body["max_tokens"] == 32 and body["messages"][0] == {"role": "system", "content": "Be brief."}
    elif api == "responses":
        assert path == "/v1/responses" and body["max_output_tokens"] == 32 and body["input"][1]["content"] == "Hello"
    else:
        assert path == "/v1/messages" and body["max_tokens"] == 32 and body["system"] == "Be brief."
        assert body["messages"] == [{"role": "user", "content": "Hello"}]


@pytest.mark.parametrize("api", ["chat", "responses", "anthropic"])
def test_failures_are_errors(api):
    with FakeServer(words=6, fail=lambda n: {1: "http", 2: "stream"}.get(n)) as server:
        target = HttpTarget(server.url, api=api, model="m")
        before, during, fine = target.run(REQUEST), target.run(REQUEST), target.run(REQUEST)
        target.close()
    assert before.error == "HTTP 500: request 1 failed" and before.chunks == 0
    assert during.error and during.chunks == 2  # what arrived before the error event
    assert fine.ok and fine.output_tokens == 6


def test_stream_cut_short_is_an_error():
    with FakeServer(words=3) as server:
        server._chat = lambda body, failing, n: iter(['data: {"choices":[{"delta":{"content":"x"}}]}\n\n'])
        target = HttpTarget(server.url, model="m")
        result = target.run(REQUEST)
        target.close()
    assert result.error == "the stream ended before its final event"


def test_unreachable_server_raises_at_once():
    with FakeServer() as server:
        url = server.url
    with pytest.raises(httpx.ConnectError):
        HttpTarget(url)


def test_model_falls_back_when_the_server_lists_none():
    with FakeServer() as server:
        server.http.RequestHandlerClass.do_GET = lambda handler: handler.wfile.close()  # drop the connection
        target = HttpTarget(server.url)
        target.close()
    assert target.model == "default_model"

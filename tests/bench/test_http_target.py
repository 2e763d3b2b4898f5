"""The bench's HTTP target: the client's neutral events turned into RequestResults, for each API.

Against the real server (scripted model: exact text, tokens and usage) and, for what mlxcli never
sends (no usage, a 500, a broken stream), against a small fake server of our own.
"""

from __future__ import annotations

import os

import pytest

from mlxcli.bench.targets import HttpTarget
from mlxcli.client import NAMES, ServerUnreachable
from mlxcli.core.request import ChatRequest, Message, Sampling, ToolSpec
from mlxcli.engine.settings import EngineSettings
from tests.support.fake_openai import FakeServer
from tests.support.models import scripted_of
from tests.tools.replies import TIME_TOOL, TWO_CALLS, TWO_CALLS_TEXT, WEATHER_TOOL

REPLY = "alpha beta gamma delta epsilon"
REQUEST = ChatRequest(
    messages=[Message("system", "Be brief."), Message("user", "Hello")], sampling=Sampling(temperature=0.0, max_tokens=32)
)
apis = pytest.mark.parametrize("api", NAMES)


def run(url: str, api: str, request: ChatRequest = REQUEST, **options):
    target = HttpTarget(url, api=api, **options)
    try:
        return target, target.run(request)
    finally:
        target.close()


@apis
def test_a_real_server_reports_exact_usage(api, scripted_engine, serve):
    engine = scripted_engine(lambda prompt: REPLY)
    server = serve(engine)
    target, result = run(server.url + "/v1", api)
    assert target.model == "scripted" and target.describe() == {
        "name": server.url.split("//")[1], "kind": "http", "url": server.url, "api": api, "model": "scripted",
        "pid": os.getpid()}  # the server runs in this process: its CPU time is this process's
    assert result.ok, result.error
    assert result.text == REPLY and result.chunks > 1
    assert result.token_source == "usage"
    assert result.output_tokens == len(engine.registry.default.tokenizer.encode(REPLY, add_special_tokens=False))
    assert result.prompt_tokens == len(engine.render(REQUEST).tokens) and result.cached_tokens == 0
    assert 0 < result.ttft <= result.latency and result.first_output <= result.last_output


@apis
def test_tool_calls_count_as_output(api, tool_server):
    server = tool_server(lambda prompt: TWO_CALLS["json"])
    request = ChatRequest(messages=[Message("user", "Weather and time?")], tools=[ToolSpec(**WEATHER_TOOL), ToolSpec(**TIME_TOOL)])
    _, result = run(server.url, api, request)
    assert result.ok, result.error
    assert result.text.startswith(TWO_CALLS_TEXT) and '"Paris"' in result.text and '"CET"' in result.text


@apis
def test_refusals_and_failures_half_way_are_errors(api, scripted_engine, serve):
    from tests.support.models import Fail

    server = serve(scripted_engine(lambda prompt: Fail("Half an answer") if "break" in prompt else REPLY, context_window=64))
    _, refused = run(server.url, api, ChatRequest(messages=[Message("user", "word " * 100)]))
    assert refused.error.startswith("the server answered 400: ") and refused.chunks == 0
    _, broken = run(server.url, api, ChatRequest(messages=[Message("user", "break")]))
    assert broken.error.startswith("generation failed") and broken.chunks > 0  # what arrived before the error event


def test_overload_is_an_error(scripted_engine, serve):
    # One generating, one waiting: the server is full.
    engine = scripted_engine(lambda prompt: " ".join(f"w{i}" for i in range(500)), EngineSettings(temperature=0.0, max_batch=1, max_queue=1))
    scripted_of(engine).step_delay = 0.02
    server = serve(engine)
    busy = HttpTarget(server.url, model="m")
    try:
        with busy.client.stream(REQUEST, model="m") as first, busy.client.stream(REQUEST, model="m"):
            next(iter(first))
            for api, status in (("chat", 503), ("anthropic", 529)):
                _, result = run(server.url, api, model="m")
                assert result.error.startswith(f"the server answered {status}: "), result.error
    finally:
        busy.close()


@apis
@pytest.mark.parametrize("usage", [True, False])
def test_tokens_from_usage_or_chunks(api, usage):
    with FakeServer(words=6, usage=usage) as server:
        _, result = run(server.url, api)
    assert result.ok, result.error
    assert result.text == " w0 w1 w2 w3 w4 w5" and result.chunks == 6
    assert result.output_tokens == 6
    assert result.token_source == ("usage" if usage else "chunks")
    assert result.prompt_tokens == (11 if usage else None)
    assert result.cached_tokens == ((0 if api == "ollama" else 3) if usage else None)  # Ollama reports no cached count
    path, body = server.requests[0]
    assert body["stream"] is True and body["model"] == "fake-model"  # discovered from GET /v1/models
    assert path == {"chat": "/v1/chat/completions", "responses": "/v1/responses", "anthropic": "/v1/messages",
                    "ollama": "/api/chat"}[api]


@apis
def test_fake_failures_are_errors(api):
    with FakeServer(words=6, fail=lambda n: {1: "http", 2: "stream"}.get(n)) as server:
        target = HttpTarget(server.url, api=api, model="m")
        before, during, fine = target.run(REQUEST), target.run(REQUEST), target.run(REQUEST)
        target.close()
    assert before.error == "the server answered 500: request 1 failed" and before.chunks == 0
    assert during.error and during.chunks == 2  # what arrived before the error event
    assert fine.ok and fine.output_tokens == 6


def test_stream_cut_short_is_an_error():
    with FakeServer(words=3) as server:
        server._chat = lambda body, failing, n: iter(['data: {"choices":[{"delta":{"content":"x"}}]}\n\n'])
        _, result = run(server.url, "chat", model="m")
    assert result.error == "the server ended the stream before the answer was complete" and result.chunks == 1


def test_unreachable_server_raises_at_once():
    with FakeServer() as server:
        url = server.url
    with pytest.raises(ServerUnreachable, match=f"cannot reach {url}"):
        HttpTarget(url)


def test_model_falls_back_when_the_server_lists_none():
    with FakeServer() as server:
        server.http.RequestHandlerClass.do_GET = lambda handler: handler.wfile.close()  # drop the connection
        target = HttpTarget(server.url)
        target.close()
    assert target.model == "default_model"

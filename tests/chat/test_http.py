"""The HTTP backend: against our own server for real, and against other servers' stream dialects."""

from __future__ import annotations

import httpx
import orjson
import pytest

from mlxcli.chat.http import HttpBackend, ServerError, base_url, request_body
from mlxcli.chat.session import ChatSession
from mlxcli.core.collect import collect
from mlxcli.core.events import Finish, ReasoningDelta, TextDelta
from mlxcli.core.request import ChatRequest, Message, Sampling
from mlxcli.server.settings import ServerSettings
from tests.chat.conftest import LONG_END
from tests.support.http import wait_for
from tests.support.models import scripted_of


def ask(text: str) -> ChatRequest:
    return ChatRequest(messages=[Message("user", text)])


@pytest.mark.parametrize(
    "given, base",
    [
        ("http://127.0.0.1:8000", "http://127.0.0.1:8000/v1"),
        ("http://127.0.0.1:8000/", "http://127.0.0.1:8000/v1"),
        ("http://127.0.0.1:8000/v1/", "http://127.0.0.1:8000/v1"),
        ("https://example.com/openai/v1", "https://example.com/openai/v1"),
    ],
)
def test_base_url(given, base):
    assert base_url(given) == base


@pytest.mark.parametrize("bad", ["127.0.0.1:8000", "ftp://host", "http://"])
def test_base_url_refuses_what_is_not_an_http_url(bad):
    with pytest.raises(ServerError, match="not an http"):
        base_url(bad)


def test_streams_an_answer_from_our_server(chat_engine, serve):
    server = serve(chat_engine)
    backend = HttpBackend(server.url)
    assert backend.model == "scripted"  # the server's first model, from /v1/models
    events = list(backend.stream(ask("hello")))
    completion = collect(events)
    assert completion.text == "Reply 1: hello"
    assert sum(isinstance(e, TextDelta) for e in events) > 1  # streamed, not in one piece
    finish = events[-1]
    assert isinstance(finish, Finish) and finish.reason == "stop"
    assert finish.usage.completion_tokens == len(chat_engine.registry.default.tokenizer.encode("Reply 1: hello", add_special_tokens=False))
    assert finish.usage.prompt_tokens > 0


def test_cancel_stops_generation_on_the_server(chat_engine, serve):
    scripted_of(chat_engine).step_delay = 0.02
    server = serve(chat_engine)
    reply = HttpBackend(server.url).stream(ask("tell me a long story"))
    received = ""
    for event in reply:
        received += event.text
        if len(received) > 20:
            break
    reply.cancel()
    assert wait_for(lambda: chat_engine.stats()["active_requests"] == 0, timeout=5)
    assert LONG_END not in received


def test_the_server_refusal_is_an_error_with_its_message(scripted_engine, serve):
    from tests.chat.conftest import respond

    server = serve(scripted_engine(respond, context_window=64))
    with pytest.raises(ServerError, match=r"answered 400: .*maximum context length is 64"):
        HttpBackend(server.url).stream(ask("word " * 200))


def test_api_keys(chat_engine, serve):
    server = serve(chat_engine, ServerSettings(port=0, api_keys=["sesame"]))
    with pytest.raises(ServerError, match=r"401.*pass --api-key"):
        HttpBackend(server.url)
    assert collect(HttpBackend(server.url, api_key="sesame").stream(ask("hi"))).text == "Reply 1: hi"


def test_an_unreachable_server():
    with pytest.raises(ServerError, match="cannot reach http://127.0.0.1:9/v1"):
        HttpBackend("http://127.0.0.1:9", model="m")


def test_a_whole_session_over_http(chat_engine, serve, tmp_path):
    from mlxcli.store import ConversationStore, StoreSettings

    server = serve(chat_engine)
    with ConversationStore(StoreSettings.default(tmp_path)) as store:
        session = ChatSession(HttpBackend(server.url), store, system="Talk like a pirate.")
        session.ask("hello")
        assert session.ask("again").completion.text == "Arr! Reply 2: again"
        assert len(store.conversation(session.conversation_id).turns) == 2


# ---- other servers' dialects, through a mock transport -------------------------------------


def sse(*chunks) -> bytes:
    return b"".join(b"data: " + (c if isinstance(c, bytes) else orjson.dumps(c)) + b"\n\n" for c in chunks)


def delta(**fields) -> dict:
    return {"choices": [{"index": 0, "delta": fields, "finish_reason": None}]}


def finish(reason: str = "stop") -> dict:
    return {"choices": [{"index": 0, "delta": {}, "finish_reason": reason}]}


def backend_answering(body: bytes, status: int = 200, seen: list | None = None) -> HttpBackend:
    """A server that lists no models (404) and answers every chat request with ``body``."""

    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/models"):
            return httpx.Response(404, json={"detail": "Not Found"})
        if seen is not None:
            seen.append(request)
        return httpx.Response(status, content=body, headers={"Content-Type": "text/event-stream"})

    return HttpBackend("http://other.example", model="m", transport=httpx.MockTransport(handle))


def test_reads_reasoning_in_both_dialects_usage_and_no_done():
    body = b": keep-alive\n\n" + sse(
        delta(role="assistant", content=""),
        delta(reasoning_content="vLLM style. "),
        delta(reasoning="Ollama style."),
        delta(content="Answer"),
        finish("length"),
        {"choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 4,
                                  "completion_tokens_details": {"reasoning_tokens": 2}}},
    )
    events = list(backend_answering(body).stream(ask("q")))
    assert events[:3] == [ReasoningDelta("vLLM style. "), ReasoningDelta("Ollama style."), TextDelta("Answer")]
    end = events[-1]
    assert end.reason == "length" and (end.usage.prompt_tokens, end.usage.completion_tokens, end.usage.reasoning_tokens) == (7, 4, 2)


def test_a_stream_cut_short_or_reporting_an_error_fails():
    with pytest.raises(ServerError, match="before the answer was complete"):
        list(backend_answering(sse(delta(content="Half"))).stream(ask("q")))
    with pytest.raises(ServerError, match="out of memory"):
        list(backend_answering(sse(delta(content="Half"), {"error": {"message": "out of memory"}})).stream(ask("q")))
    with pytest.raises(ServerError, match="not JSON"):
        list(backend_answering(sse(b"{oops")).stream(ask("q")))


@pytest.mark.parametrize(
    "body, message",
    [
        (b'{"error": {"message": "model \'m\' not found"}}', "answered 404: model 'm' not found"),
        (b'{"detail": "Not Found"}', "answered 404: Not Found"),
        (b"plain text", "answered 404: plain text"),
    ],
)
def test_error_bodies(body, message):
    with pytest.raises(ServerError, match=message):
        backend_answering(body, status=404).stream(ask("q"))


def test_a_server_without_a_model_list_needs_a_model_name():
    with pytest.raises(ServerError, match="cannot list the models of http://other.example/v1 .*name one with --model"):
        HttpBackend("http://other.example", transport=httpx.MockTransport(lambda r: httpx.Response(404)))


def test_request_body_sends_only_the_sampling_options_given():
    seen: list[httpx.Request] = []
    request = ChatRequest(
        messages=[Message("system", "Be terse."), Message("user", "q"), Message("assistant", None)],
        sampling=Sampling(temperature=0.2, max_tokens=50, top_k=40, seed=7, stop=["END"]),
    )
    list(backend_answering(sse(finish()), seen=seen).stream(request))
    body = orjson.loads(seen[0].content)
    assert body == request_body(request, "m")
    assert body["messages"] == [
        {"role": "system", "content": "Be terse."}, {"role": "user", "content": "q"}, {"role": "assistant", "content": ""},
    ]
    assert {k: body[k] for k in ("model", "stream", "temperature", "max_tokens", "top_k", "seed", "stop")} == {
        "model": "m", "stream": True, "temperature": 0.2, "max_tokens": 50, "top_k": 40, "seed": 7, "stop": ["END"],
    }
    assert "top_p" not in body and "min_p" not in body  # the server's defaults apply
    assert body["stream_options"] == {"include_usage": True} and body["store"] is False

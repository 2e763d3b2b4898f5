"""Server hardening through real HTTP: bad input, limits, overload, disconnects, engine faults,
API keys, Host and Origin checks, model names, graceful shutdown.

Each case checks the status and error shape documented in README "Security and limits". The
module's shared server must still answer a normal request after all of them (last test).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import anthropic
import httpx
import openai
import orjson
import pytest

from mlxcli.core.errors import ContextLengthExceeded
from mlxcli.core.request import ChatRequest, Message
from mlxcli.engine.engine import EngineSettings, MlxEngine
from mlxcli.server import errors
from mlxcli.server.settings import ServerSettings
from tests.support.http import (
    CHAT,
    TOKEN,
    anthropic_error,
    azure_error,
    open_stream,
    openai_error,
    raw_http,
    read_until,
    settled,
    wait_for,
)
from tests.support.models import scripted_model, scripted_of
from tests.support.server import RunningServer

HI = [{"role": "user", "content": "hi"}]
LONG_REPLY = " ".join(f"w{i}" for i in range(400))  # ~800 tokens
MEDIUM_REPLY = " ".join(f"m{i}" for i in range(40))


def respond(prompt: str) -> str:
    if "boom" in prompt:
        raise RuntimeError("scripted failure inside generation")
    if "long" in prompt:
        return LONG_REPLY
    if "medium" in prompt:
        return MEDIUM_REPLY
    return "ok"


@pytest.fixture(scope="module")
def engine(tokenizer_dir):
    engine = MlxEngine([scripted_model(tokenizer_dir, respond)], EngineSettings(temperature=0.0)).start()
    yield engine
    engine.stop(grace=1)


@pytest.fixture(scope="module")
def server(engine):
    with RunningServer(engine) as srv:
        yield srv


@pytest.fixture(scope="module")
def keyed(engine):
    """The same engine behind a server that requires one of two API keys."""
    with RunningServer(engine, ServerSettings(port=0, api_keys=["sk-one", "sk-two"])) as srv:
        yield srv


def chat(server, body=None, **kw) -> httpx.Response:
    return httpx.post(server.url + CHAT, json={"messages": HI} if body is None else body, timeout=30, **kw)


# ---- bodies: JSON, content type, encoding, nesting -------------------------

JSON = {"content-type": "application/json"}


@pytest.mark.parametrize(
    "raw, content_type, needle",
    [
        (b"{not json", "application/json", "not valid JSON"),
        (b'{"messages": [{"role": "user", "content": "\xff\xfe"}]}', "application/json", "not valid JSON"),
        (b'{"messages": [{"role": "user", "content": "\\ud800"}]}', "application/json", "not valid JSON"),
        (b'{"messages": NaN}', "application/json", "not valid JSON"),
        (b'{"temperature": 1e400, "messages": []}', "application/json", "not valid JSON"),
        (b"[1, 2]", "application/json", "must be a JSON object"),
        (b"", "application/json", "empty"),
        (b"messages=hi", "application/x-www-form-urlencoded", "Content-Type"),
        (b'{"messages": []}', "text/plain", "Content-Type"),  # what a browser sends without a preflight
        (b'{"x": ' + b"[" * 100 + b"]" * 100 + b', "messages": []}', "application/json", "nested too deeply"),
        (b"[" * 5000 + b"]" * 5000, "application/json", "not valid JSON"),
    ],
    ids=["syntax", "utf8", "surrogate", "nan", "infinity", "array", "empty", "form", "text-plain", "depth-100", "depth-5000"],
)
def test_bad_bodies_are_400(server, raw, content_type, needle):
    err = openai_error(httpx.post(server.url + CHAT, content=raw, headers={"content-type": content_type}), 400)
    assert needle in err["message"] and err["type"] == "invalid_request_error"


def test_byte_order_mark_is_accepted(server):
    r = httpx.post(server.url + CHAT, content=b"\xef\xbb\xbf" + orjson.dumps({"messages": HI}), headers=JSON)
    assert r.status_code == 200 and r.json()["choices"][0]["message"]["content"] == "ok"


# ---- fields: every one type- and range-checked, the parameter named ----------


def msg(**extra):
    return {"messages": HI, **extra}


def tool(name="get_weather"):
    return {"type": "function", "function": {"name": name, "parameters": {"type": "object", "properties": {}}}}


@pytest.mark.parametrize(
    "body, param",
    [
        (msg(n=2), "n"),
        (msg(n=0), "n"),
        (msg(top_logprobs=21), "top_logprobs"),
        (msg(top_logprobs=3), "top_logprobs"),  # without logprobs: true
        (msg(logprobs="yes"), "logprobs"),
        (msg(stop=[f"s{i}" for i in range(17)]), "stop"),
        (msg(stop=["x" * 257]), "stop"),
        (msg(stop=[1]), "stop[0]"),
        (msg(tools=[tool(f"t{i}") for i in range(129)]), "tools"),
        (msg(tools=[tool("bad name!")]), "tools[0].function.name"),
        (msg(tools=[{"function": {"name": "f"}}]), "tools[0].type"),
        (msg(temperature=-0.5), "temperature"),
        (msg(top_p=1.5), "top_p"),
        (msg(max_tokens=2**40), "max_tokens"),
        (msg(max_completion_tokens="10"), "max_completion_tokens"),
        (msg(seed=2**64), "seed"),
        (msg(seed=1.5), "seed"),
        (msg(stream="yes"), "stream"),
        (msg(logit_bias={"50256": -100}), "logit_bias"),
        (msg(functions=[{"name": "f"}]), "functions"),
        (msg(modalities=["text", "audio"]), "modalities[1]"),
        (msg(metadata={f"k{i}": "v" for i in range(17)}), "metadata"),
        (msg(metadata={"k": 1}), "metadata.k"),
        (msg(user=["me"]), "user"),
        (msg(chat_template_kwargs={"chat_template": "{{ 'pwned' }}"}), "chat_template_kwargs.chat_template"),
        (msg(chat_template_kwargs={f"k{i}": 1 for i in range(33)}), "chat_template_kwargs"),
        (msg(response_format={"type": "json_schema", "json_schema": {}}), "response_format.json_schema.name"),
        (msg(response_format={"type": "yaml"}), "response_format.type"),
        (msg(tools=[tool()], tool_choice={"type": "function", "function": {"name": "other"}}), "tool_choice"),
        (msg(reasoning_effort="extreme"), "reasoning_effort"),
        (msg(model="x" * 300), "model"),
        (msg(model="evil\u0000name"), "model"),
        ({"messages": [{"role": "user", "content": "x"}] * 4097}, "messages"),
        ({"messages": [{"role": "user", "content": [{"type": "input_audio", "input_audio": {"data": "x", "format": "wav"}}]}]}, "messages[0].content[0].type"),
        ({"messages": [{"role": "assistant", "content": None, "tool_calls": [{"type": "function"}]}]}, "messages[0].tool_calls[0].function"),
        ({"messages": [{"role": "user", "content": "x", "name": 5}]}, "messages[0].name"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_bad_fields_are_400_naming_the_parameter(server, body, param):
    err = openai_error(chat(server, body), 400)
    assert err["param"] == param, err
    assert err["type"] == "invalid_request_error"


@pytest.mark.parametrize(
    "extra",
    [
        {"seed": -1},  # int64 seeds are taken as their unsigned value
        {"top_k": 10_000_000},  # beyond the vocabulary: no top-k at all (mlx-lm would refuse it)
        {"max_tokens": 2**31 - 1},  # capped at the room left in the context window
        {"stop": ["", "never-appears"], "metadata": {"k": "v"}, "user": "u", "store": False, "logit_bias": {}},
    ],
    ids=["negative-seed", "huge-top-k", "huge-max-tokens", "passive-fields"],
)
def test_edge_values_that_are_valid_work(server, extra):
    r = chat(server, msg(**extra))
    assert r.status_code == 200, r.text
    assert r.json()["choices"][0]["message"]["content"] == "ok"


def test_sdk_sees_typed_errors(server):
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="x", max_retries=0)
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="m", messages=HI, n=3)
    assert info.value.body["param"] == "n"


# ---- limits ----------------------------------------------------------------


def test_body_over_the_limit_is_413(engine):
    with RunningServer(engine, ServerSettings(port=0, max_body_bytes=64 * 1024)) as srv:
        big = {"messages": [{"role": "user", "content": "x" * 100_000}]}
        err = openai_error(chat(srv, big), 413)
        assert "limit" in err["message"]
        # Far beyond the limit: waitress refuses from Content-Length alone, in the same JSON shape.
        status, headers, body = raw_http(
            srv.http.port,
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Content-Length: 1000000000\r\n\r\n{",
        )
        assert status == 413 and headers["content-type"] == "application/json"
        assert set(orjson.loads(body)["error"]) == {"message", "type", "param", "code"}
        assert chat(srv).status_code == 200


def test_headers_over_the_limit_are_431(server):
    status, headers, body = raw_http(
        server.http.port,
        b"GET /v1/models HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * (80 * 1024) + b"\r\n\r\n",
    )
    assert status == 431 and headers["content-type"] == "application/json"
    assert orjson.loads(body)["error"]["type"] == "invalid_request_error"


def test_malformed_http_is_400_json(server):
    status, headers, body = raw_http(server.http.port, b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n")
    assert status == 400 and headers["content-type"] == "application/json"
    assert "message" in orjson.loads(body)["error"]


def test_waitress_errors_take_the_shape_of_the_path(server):
    status, _, body = raw_http(
        server.http.port,
        b"POST /v1/messages HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1000000000\r\n\r\n{",
    )
    assert status == 413 and orjson.loads(body)["error"]["type"] == "request_too_large"


def test_prompt_over_the_context_window_many_times(engine, server):
    too_long = {"messages": [{"role": "user", "content": "word " * (engine.registry.default.context_window + 10)}]}
    for _ in range(20):
        err = openai_error(chat(server, too_long), 400)
        assert err["code"] == "context_length_exceeded" and err["param"] == "messages"
    assert engine.stats()["queue_depth"] == 0
    assert chat(server).json()["choices"][0]["message"]["content"] == "ok"


def test_context_length_error_in_each_shape():
    err = ContextLengthExceeded(5000, 2048)
    status, _, body = errors.render_for_path(err, "/v1/messages")
    assert status == 400
    assert orjson.loads(body) == {
        "type": "error",
        "error": {"type": "invalid_request_error", "message": "prompt is too long: 5000 tokens > 2048 maximum"},
    }
    status, _, body = errors.render_for_path(err, "/v1/chat/completions")
    assert orjson.loads(body)["error"]["code"] == "context_length_exceeded"


# ---- unknown routes and methods in every shape ------------------------------


def test_unknown_routes_in_each_shape(server):
    assert openai_error(httpx.get(server.url + "/v1/nope"), 404)["type"] == "invalid_request_error"
    anthropic_error(httpx.post(server.url + "/v1/messages/nope", json={}), 404, "not_found_error")
    azure_error(httpx.post(server.url + "/openai/nope", json={}), 404)
    r = httpx.delete(server.url + CHAT)
    openai_error(r, 405)
    assert r.headers["allow"] == "POST, OPTIONS"  # RFC 9110: a 405 says what the route takes
    r = httpx.put(server.url + "/v1/messages", json={})
    anthropic_error(r, 405, "invalid_request_error")
    assert "POST" in r.headers["allow"]


# ---- API keys --------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer sk-wrong"}, {"Authorization": "sk-one"}, {"x-api-key": "sk-on"}, {"Authorization": "Basic c2stb25l"}],
    ids=["missing", "wrong", "no-scheme", "prefix", "basic"],
)
def test_missing_or_wrong_key_is_401(keyed, headers):
    err = openai_error(httpx.post(keyed.url + CHAT, json={"messages": HI}, headers=headers), 401)
    assert err["code"] == "invalid_api_key"


@pytest.mark.parametrize(
    "headers",
    [{"Authorization": "Bearer sk-one"}, {"Authorization": "bearer sk-two"}, {"api-key": "sk-one"}, {"x-api-key": "sk-two"}],
    ids=["bearer", "bearer-lowercase", "azure", "anthropic"],
)
def test_each_key_header_is_accepted(keyed, headers):
    r = httpx.post(keyed.url + CHAT, json={"messages": HI}, headers=headers)
    assert r.status_code == 200 and r.json()["choices"][0]["message"]["content"] == "ok"


def test_401_takes_the_shape_of_the_api(keyed):
    anthropic_error(httpx.post(keyed.url + "/v1/messages", json={}), 401, "authentication_error")
    azure_error(httpx.post(keyed.url + "/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21", json={}), 401)


def test_sdks_raise_authentication_errors(keyed):
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=keyed.url + "/v1", api_key="sk-wrong", max_retries=0).models.list()
    with pytest.raises(anthropic.AuthenticationError):
        anthropic.Anthropic(base_url=keyed.url, api_key="sk-wrong", max_retries=0).messages.create(
            model="m", max_tokens=5, messages=HI
        )
    ok = openai.OpenAI(base_url=keyed.url + "/v1", api_key="sk-two", max_retries=0)
    assert [m.id for m in ok.models.list()] == ["scripted"]


def test_health_and_preflight_need_no_key(keyed):
    assert httpx.get(keyed.url + "/health").status_code == 200
    r = httpx.options(
        keyed.url + CHAT,
        headers={"Origin": "http://localhost:5173", "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization"},
    )
    assert r.status_code == 200 and r.headers["access-control-allow-origin"] == "http://localhost:5173"
    openai_error(httpx.get(keyed.url + "/v1/models"), 401)  # everything else does


# ---- Host and Origin -------------------------------------------------------


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8000", "127.0.0.1.evil.example", "localhost.evil.example", "192.168.1.20"])
def test_foreign_host_is_403_on_loopback(server, host):
    err = openai_error(chat(server, headers={"Host": host}), 403)
    assert err["type"] == "permission_error" and err["code"] == "host_not_allowed"


@pytest.mark.parametrize("host", ["localhost", "LOCALHOST:8000", "127.0.0.1", "127.0.0.2:1", "[::1]:8000", "app.localhost"])
def test_loopback_hosts_are_served(server, host):
    assert httpx.get(server.url + "/v1/models", headers={"Host": host}).status_code == 200


def test_allowed_hosts_adds_names(engine):
    with RunningServer(engine, ServerSettings(port=0, allowed_hosts=["llm.internal"])) as srv:
        assert httpx.get(srv.url + "/v1/models", headers={"Host": "llm.internal:443"}).status_code == 200
        openai_error(httpx.get(srv.url + "/v1/models", headers={"Host": "other.internal"}), 403)


def test_foreign_origin_is_refused_before_any_work(server, engine):
    prompts_before = len(scripted_of(engine).prompts)
    err = openai_error(
        httpx.post(server.url + CHAT, content=orjson.dumps(msg(messages=[{"role": "user", "content": "from evil"}])),
                   headers={"Origin": "https://evil.example", "content-type": "text/plain"}),
        403,
    )
    assert err["code"] == "origin_not_allowed"
    assert len(scripted_of(engine).prompts) == prompts_before
    r = httpx.options(server.url + CHAT, headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"})
    assert r.status_code == 403 and "access-control-allow-origin" not in r.headers


def test_local_origins_get_cors_headers(server):
    r = chat(server, headers={"Origin": "http://127.0.0.1:3000"})
    assert r.status_code == 200
    assert r.headers["access-control-allow-origin"] == "http://127.0.0.1:3000"
    assert "origin" in r.headers["vary"].lower() and "x-request-id" in r.headers["access-control-expose-headers"].lower()


def test_configured_origins(engine):
    with RunningServer(engine, ServerSettings(port=0, cors_origins=["https://chat.example.com"])) as srv:
        assert chat(srv, headers={"Origin": "https://chat.example.com"}).headers["access-control-allow-origin"] == "https://chat.example.com"
        openai_error(chat(srv, headers={"Origin": "http://localhost:3000"}), 403)
    with RunningServer(engine, ServerSettings(port=0, cors_origins=["*"])) as srv:
        assert chat(srv, headers={"Origin": "https://anything.example"}).headers["access-control-allow-origin"] == "*"


# ---- model names are not paths ---------------------------------------------


@pytest.mark.parametrize("name", ["../../../../tmp/mlxcli-pwned", "/tmp/mlxcli-pwned", "..", "~/x", "org/../../x", "C:\\x"])
def test_model_names_never_touch_the_filesystem(server, test_home, name):
    models = Path(test_home) / "models"
    before = sorted(p.name for p in models.iterdir()) if models.exists() else []
    r = chat(server, msg(model=name))
    assert r.status_code == 200 and r.json()["model"] == name  # echoed back, as any OpenAI server does
    assert not Path("/tmp/mlxcli-pwned").exists()
    assert (sorted(p.name for p in models.iterdir()) if models.exists() else []) == before


# ---- engine faults -----------------------------------------------------------


def test_generation_failure_is_an_error_for_that_request_only(server):
    err = openai_error(chat(server, {"messages": [{"role": "user", "content": "boom"}]}), 500)
    assert err["type"] == "server_error"
    with httpx.stream("POST", server.url + CHAT, json={"messages": [{"role": "user", "content": "boom"}], "stream": True}) as r:
        assert r.status_code == 200
        frames = [f for f in r.read().decode().split("\n\n") if f]
    assert orjson.loads(frames[0][6:])["choices"][0]["delta"]["role"] == "assistant"
    assert set(orjson.loads(frames[-1][6:])["error"]) == {"message", "type", "param", "code"}
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="x", max_retries=0)
    with pytest.raises(openai.APIError):
        list(client.chat.completions.create(model="m", messages=[{"role": "user", "content": "boom"}], stream=True))
    assert chat(server).json()["choices"][0]["message"]["content"] == "ok"


class EngineKiller(BaseException):
    """Escapes the engine's per-request error handling: the worker thread dies."""


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_dead_engine_makes_health_503_and_requests_fail_fast(scripted_engine, serve):
    def deadly(prompt: str) -> str:
        if "die" in prompt:
            raise EngineKiller()
        return "ok"

    srv = serve(scripted_engine(deadly))
    assert httpx.get(srv.url + "/health").json()["status"] == "ok"
    started = time.monotonic()
    r = chat(srv, {"messages": [{"role": "user", "content": "die"}]})
    assert openai_error(r, 500)["type"] == "server_error"
    health = httpx.get(srv.url + "/health")
    assert health.status_code == 503 and health.json()["status"] == "error"
    openai_error(chat(srv), 500)
    assert time.monotonic() - started < 10


# ---- overload ----------------------------------------------------------------


def test_overload_is_an_immediate_refusal_in_each_shape(scripted_engine, serve):
    engine = scripted_engine(respond, EngineSettings(temperature=0.0, max_queue=1, max_batch=1))
    scripted_of(engine).step_delay = 0.02
    srv = serve(engine)  # requests in flight: the engine's max-batch + max-queue
    streams = [open_stream(srv.http.port, "long 0")]
    read_until(streams[0], TOKEN)  # generating: the engine queue is empty again
    streams.append(open_stream(srv.http.port, "long 1"))
    read_until(streams[1], b"data: ")  # admitted, waiting in the engine queue
    try:
        started = time.monotonic()
        err = openai_error(r := chat(srv), 503)
        assert err["type"] == "server_error" and r.headers["retry-after"] == "1"
        r = httpx.post(srv.url + "/v1/messages", json={"model": "m", "max_tokens": 5, "messages": HI})
        anthropic_error(r, 529, "overloaded_error")
        assert r.headers["retry-after"] == "1"
        azure_error(httpx.post(srv.url + "/openai/deployments/d/chat/completions?api-version=2024-10-21", json={}), 503)
        with pytest.raises(anthropic.APIStatusError) as info:
            anthropic.Anthropic(base_url=srv.url, api_key="x", max_retries=0).messages.create(model="m", max_tokens=5, messages=HI)
        assert info.value.status_code == 529 and info.value.body["error"]["type"] == "overloaded_error"
        health = httpx.get(srv.url + "/health").json()
        assert health["in_flight"] == 2 and health["max_in_flight"] == 2 and health["active_requests"] == 1
        assert health["queue_depth"] == 1
        assert time.monotonic() - started < 5  # refusals and /health never wait for the generations
    finally:
        for sock in streams:
            sock.close()
    assert wait_for(lambda: httpx.get(srv.url + "/health").json()["in_flight"] == 0)
    assert chat(srv).status_code == 200


# ---- disconnects -------------------------------------------------------------


@pytest.fixture
def slow(scripted_engine, serve):
    """A server whose model takes 20 ms per forward pass (an 800-token answer: ~16 s), one request at a time."""
    engine = scripted_engine(respond, EngineSettings(temperature=0.0, max_batch=1))
    scripted_of(engine).step_delay = 0.02
    return serve(engine)


def forward_passes(srv) -> int:
    return scripted_of(srv.engine).calls


def test_disconnect_mid_stream_stops_generation(slow):
    sock = open_stream(slow.http.port, "long")
    read_until(sock, TOKEN, count=6)
    at_close = forward_passes(slow)
    sock.close()
    stopped, waited = settled(lambda: forward_passes(slow))
    assert stopped - at_close <= 10, f"{stopped - at_close} more forward passes after the client left"
    assert waited < 3
    health = httpx.get(slow.url + "/health").json()
    assert health["active_requests"] == 0 and health["in_flight"] == 0
    started = time.monotonic()
    assert chat(slow).json()["choices"][0]["message"]["content"] == "ok"  # the next request starts at once
    assert time.monotonic() - started < 3


def test_disconnect_during_prefill_stops_it(scripted_engine, serve):
    # 16-token prefill chunks at 50 ms each: a ~600-token prompt takes ~2 s before its first token.
    engine = scripted_engine(respond, EngineSettings(temperature=0.0, prefill_step_size=16))
    scripted_of(engine).step_delay = 0.05
    srv = serve(engine)
    prompt = "long " + "lorem ipsum " * 250
    prefill_passes = len(engine.render(ChatRequest(messages=[Message(role="user", content=prompt)])).tokens) // 16
    sock = open_stream(srv.http.port, prompt)
    read_until(sock, b"data: ")  # the role chunk; no token yet
    assert wait_for(lambda: forward_passes(srv) >= 3)
    at_close = forward_passes(srv)
    sock.close()
    stopped, _ = settled(lambda: forward_passes(srv))
    assert stopped - at_close <= 10, f"{stopped - at_close} more forward passes after the client left"
    assert stopped < prefill_passes  # the prefill never finished
    assert httpx.get(srv.url + "/health").json()["in_flight"] == 0


def test_keep_alive_comments_while_waiting_for_the_first_token(scripted_engine, serve):
    engine = scripted_engine(respond, EngineSettings(temperature=0.0, prefill_step_size=16))
    scripted_of(engine).step_delay = 0.05
    srv = serve(engine, ServerSettings(port=0, keepalive_seconds=0.3))
    sock = open_stream(srv.http.port, "lorem ipsum " * 100)  # ~1 s of prefill
    head = read_until(sock, TOKEN)
    sock.close()
    assert head.index(b": keep-alive\n\n") < head.index(TOKEN)


def test_disconnect_of_a_non_streaming_request_stops_generation(slow):
    sock = open_stream(slow.http.port, "long", stream=False)
    assert wait_for(lambda: forward_passes(slow) > 10)
    at_close = forward_passes(slow)
    sock.close()
    stopped, waited = settled(lambda: forward_passes(slow))
    assert stopped - at_close <= 30, f"{stopped - at_close} more forward passes after the client left"
    assert httpx.get(slow.url + "/health").json()["in_flight"] == 0


def test_disconnect_before_the_first_token_drops_the_queued_request(slow):
    first = open_stream(slow.http.port, "long first")
    read_until(first, TOKEN, count=2)
    second = open_stream(slow.http.port, "long second")
    read_until(second, b"data: ")  # admitted; its job waits behind the first
    assert httpx.get(slow.url + "/health").json()["queue_depth"] == 1
    second.close()
    assert wait_for(lambda: httpx.get(slow.url + "/health").json()["queue_depth"] == 0, timeout=3)
    first.close()
    settled(lambda: forward_passes(slow))
    assert not any("long second" in p for p in scripted_of(slow.engine).prompts)  # never generated


# ---- graceful shutdown -------------------------------------------------------


def test_shutdown_finishes_in_flight_requests_then_runs_hooks(scripted_engine):
    engine = scripted_engine(respond)
    scripted_of(engine).step_delay = 0.02
    srv = RunningServer(engine, grace=30)
    events: list[str] = []
    running_at_hook: list[int] = []  # the hooks run once in-flight work is over
    srv.hooks.add(lambda: running_at_hook.append(engine.stats()["active_requests"]))
    srv.hooks.add(lambda: 1 / 0)  # a failing hook does not stop the others

    def client() -> None:
        body = {"messages": [{"role": "user", "content": "medium"}], "stream": True}
        with httpx.stream("POST", srv.url + CHAT, json=body, timeout=60) as r:
            body = r.read().decode()
        events.append("done" if body.endswith("data: [DONE]\n\n") else "cut")

    thread = threading.Thread(target=client)
    thread.start()
    assert wait_for(lambda: forward_passes(srv) > 5)
    srv.close()
    thread.join(timeout=30)
    assert events == ["done"]
    assert running_at_hook == [0]
    assert srv.hooks.ran


def test_shutdown_cancels_what_outlives_the_grace_period(scripted_engine):
    engine = scripted_engine(respond)
    scripted_of(engine).step_delay = 0.02
    srv = RunningServer(engine, grace=0.5)
    hook_calls = []
    srv.hooks.add(lambda: hook_calls.append(forward_passes(srv)))
    sock = open_stream(srv.http.port, "long")
    read_until(sock, TOKEN, count=3)
    started = time.monotonic()
    srv.close()
    assert time.monotonic() - started < 6
    sock.settimeout(5)
    rest = b""
    while chunk := sock.recv(65536):
        rest += chunk
    sock.close()
    frames = [f for f in rest.split(b"\n\n") if b"data: " in f]
    assert b"shutting down" in frames[-1] and b'"error"' in frames[-1]  # an error, not a finished-looking answer
    assert b"[DONE]" not in rest
    assert len(hook_calls) == 1
    stopped, _ = settled(lambda: forward_passes(srv))
    assert stopped - hook_calls[0] <= 5


# ---- after everything -----------------------------------------------------------


def test_zz_server_still_answers_after_the_whole_suite(server):
    health = httpx.get(server.url + "/health").json()
    assert health["status"] == "ok" and health["in_flight"] == 0 and health["queue_depth"] == 0
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="x", max_retries=0)
    r = client.chat.completions.create(model="m", messages=HI)
    assert r.choices[0].message.content == "ok"

"""OpenAI Chat Completions through the official SDK and raw HTTP, against a real server."""

from __future__ import annotations

import httpx
import openai
import orjson
import pytest


@pytest.fixture
def server(scripted_engine, serve):
    def respond(prompt: str) -> str:
        if "long" in prompt:
            return "one two three four five six seven eight nine ten"
        return "The capital of France is Paris."

    return serve(scripted_engine(respond))


@pytest.fixture
def client(server):
    return openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)


def test_non_streaming(client):
    r = client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "Capital of France?"}])
    assert r.model == "gpt-4o"  # echoed back
    assert r.object == "chat.completion" and r.id.startswith("chatcmpl-")
    choice = r.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content == "The capital of France is Paris."
    assert choice.finish_reason == "stop"
    assert r.usage.completion_tokens > 0 and r.usage.prompt_tokens > 0
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens


def test_streaming_with_usage(client):
    stream = client.chat.completions.create(
        model="m",
        messages=[{"role": "user", "content": "Capital of France?"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert all(c.choices[0].delta.role is None for c in chunks[1:] if c.choices)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "The capital of France is Paris."
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["stop"]
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens > 0
    assert len({c.id for c in chunks}) == 1


def test_stream_helper_accumulates(client):
    with client.chat.completions.stream(model="m", messages=[{"role": "user", "content": "hi"}]) as stream:
        final = stream.get_final_completion()
    assert final.choices[0].message.content == "The capital of France is Paris."
    assert final.choices[0].message.role == "assistant"


def test_raw_stream_framing(server):
    body = {"messages": [{"role": "user", "content": "hi"}], "stream": True}
    with httpx.stream("POST", server.url + "/v1/chat/completions", json=body) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        raw = r.read().decode()
    frames = [f for f in raw.split("\n\n") if f]
    assert all(f.startswith("data: ") for f in frames)
    assert frames[-1] == "data: [DONE]"
    payloads = [orjson.loads(f[6:]) for f in frames[:-1]]
    assert all("usage" not in p for p in payloads)  # no include_usage → no usage key
    assert payloads[-1]["choices"][0]["delta"] == {} and payloads[-1]["choices"][0]["finish_reason"] == "stop"


def test_stop_and_max_tokens(client):
    r = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "long"}], stop=[" four"])
    assert r.choices[0].message.content == "one two three"
    assert r.choices[0].finish_reason == "stop"
    r = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "long"}], max_completion_tokens=2)
    assert r.choices[0].finish_reason == "length" and r.usage.completion_tokens == 2
    r = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "long"}], max_tokens=3)
    assert r.usage.completion_tokens == 3


def test_content_forms_and_developer_role(server, scripted_engine):
    seen = []
    engine = scripted_engine(lambda p: seen.append(p) or "ok")
    from tests.support.server import RunningServer

    with RunningServer(engine) as srv:
        c = openai.OpenAI(base_url=srv.url + "/v1", api_key="x", max_retries=0)
        r = c.chat.completions.create(
            model="m",
            messages=[
                {"role": "developer", "content": "DEV-RULES"},
                {"role": "user", "content": [{"type": "text", "text": "part-one"}, {"type": "input_text", "text": "part-two"}]},
                {"role": "assistant", "content": None, "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
                {"role": "tool", "tool_call_id": "call_1", "content": "tool-output"},
                {"role": "user", "content": "final"},
            ],
            extra_body={"some_unknown_field": 1},
        )
    assert r.choices[0].message.content == "ok"
    prompt = seen[-1]
    assert "<|im_start|>system\nDEV-RULES" in prompt
    assert "part-one\npart-two" in prompt and "final" in prompt


def test_models_and_health(server):
    models = httpx.get(server.url + "/v1/models").json()
    assert models["object"] == "list"
    entry = models["data"][0]
    assert entry["id"] == "scripted" and entry["object"] == "model" and entry["context_window"] == 2048
    assert isinstance(entry["created"], int) and entry["owned_by"]
    health = httpx.get(server.url + "/health").json()
    assert health["status"] == "ok" and health["model"] == "scripted"
    assert health["queue_depth"] == 0 and health["active_requests"] == 0


def test_sdk_model_list(client):
    assert [m.id for m in client.models.list()] == ["scripted"]


def test_cors_preflight(server):
    r = httpx.options(
        server.url + "/v1/chat/completions",
        headers={
            "Origin": "http://localhost:3000",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )
    assert r.status_code == 200
    assert r.headers["access-control-allow-origin"] == "http://localhost:3000"  # loopback origins by default
    assert "POST" in r.headers["access-control-allow-methods"]
    assert "authorization" in r.headers["access-control-allow-headers"].lower()


def error_of(r: httpx.Response, status: int) -> dict:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert "Traceback" not in r.text
    return body["error"]


@pytest.mark.parametrize(
    "body, param",
    [
        ({}, "messages"),
        ({"messages": []}, "messages"),
        ({"messages": "hi"}, "messages"),
        ({"messages": [{"role": "wizard", "content": "x"}]}, "messages[0].role"),
        ({"messages": [{"role": "user"}]}, "messages[0].content"),
        ({"messages": [{"role": "user", "content": 5}]}, "messages[0].content"),
        ({"messages": [{"role": "user", "content": "x"}], "temperature": 3}, "temperature"),
        ({"messages": [{"role": "user", "content": "x"}], "temperature": "hot"}, "temperature"),
        ({"messages": [{"role": "user", "content": "x"}], "max_tokens": 0}, "max_tokens"),
        ({"messages": [{"role": "user", "content": "x"}], "stop": [1]}, "stop[0]"),
        ({"messages": [{"role": "user", "content": "x"}], "stream_options": {"include_usage": True}}, "stream_options"),
        ({"messages": [{"role": "user", "content": "x"}], "n": 2}, "n"),
        ({"messages": [{"role": "tool", "content": "x"}]}, "messages[0].tool_call_id"),
    ],
)
def test_bad_requests_name_the_parameter(server, body, param):
    err = error_of(httpx.post(server.url + "/v1/chat/completions", json=body), 400)
    assert err["type"] == "invalid_request_error"
    assert err["param"] == param


def test_invalid_json_and_content_type(server):
    url = server.url + "/v1/chat/completions"
    error_of(httpx.post(url, content=b"{not json", headers={"content-type": "application/json"}), 400)
    error_of(httpx.post(url, content=b"\xff\xfe", headers={"content-type": "application/json"}), 400)
    error_of(httpx.post(url, content=b"[1,2]", headers={"content-type": "application/json"}), 400)
    error_of(httpx.post(url, content=b"a=b", headers={"content-type": "application/x-www-form-urlencoded"}), 400)


def test_unknown_route_and_wrong_method(server):
    assert error_of(httpx.get(server.url + "/v1/nope"), 404)["type"] == "invalid_request_error"
    error_of(httpx.get(server.url + "/v1/chat/completions"), 405)


def test_sdk_raises_typed_errors(client):
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model="m", messages=[], temperature=0)
    assert err.value.body["param"] == "messages"


def test_context_length_error(scripted_engine, serve):
    srv = serve(scripted_engine(lambda p: "x", context_window=48))
    err = error_of(
        httpx.post(srv.url + "/v1/chat/completions", json={"messages": [{"role": "user", "content": "word " * 100}]}), 400
    )
    assert err["code"] == "context_length_exceeded"


# ---- logprobs ------------------------------------------------------------------

ANSWER = "The capital of France is Paris."


def test_logprobs_cover_every_token_of_the_answer_with_its_alternatives(client):
    r = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "Capital?"}], logprobs=True, top_logprobs=3)
    content = r.choices[0].logprobs.content
    assert "".join(t.token for t in content) == ANSWER and len(content) == r.usage.completion_tokens
    for t in content:
        assert bytes(t.bytes).decode() == t.token and t.logprob <= 0
        assert len(t.top_logprobs) == 3 and t.top_logprobs[0].token == t.token  # the scripted token is the likeliest
        assert [a.logprob for a in t.top_logprobs] == sorted((a.logprob for a in t.top_logprobs), reverse=True)
    plain = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "Capital?"}], logprobs=True)
    assert all(t.top_logprobs == [] for t in plain.choices[0].logprobs.content)


def test_streamed_logprobs_ride_on_the_chunks_of_their_text_beside_a_request_without(client):
    """Two requests batched together: only the one that asks pays for logprobs."""
    import concurrent.futures

    def ask(logprobs: bool) -> list:
        stream = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "Capital?"}], stream=True,
                                                logprobs=logprobs, top_logprobs=2 if logprobs else None)
        return list(stream)

    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        with_lp, without = pool.map(ask, [True, False])
    assert all(c.choices[0].logprobs is None for c in without if c.choices)
    tokens = [t.token for c in with_lp if c.choices and c.choices[0].logprobs for t in c.choices[0].logprobs.content]
    text = "".join(c.choices[0].delta.content or "" for c in with_lp if c.choices)
    assert "".join(tokens) == text == ANSWER

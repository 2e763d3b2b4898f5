"""Several models behind one server: routing by name and alias, 404s, /v1/models, /health, /mlxcli/ps."""

from __future__ import annotations

import threading
import time

import httpx
import openai
import pytest

from tests.support.http import wait_for
from tests.support.models import scripted_model


@pytest.fixture
def two(tokenizer_dir, make_engine, serve):
    engine = make_engine(
        [
            scripted_model(tokenizer_dir, lambda p: "Answer from alpha.", name="alpha", aliases=("a", "default"), context_window=1024),
            scripted_model(tokenizer_dir, lambda p: "Answer from beta.", name="beta", aliases=("b",), context_window=512),
        ],
        max_loaded_models=1,
    )
    return serve(engine)


@pytest.fixture
def client(two):
    return openai.OpenAI(base_url=two.url + "/v1", api_key="unused", max_retries=0)


def chat(client, model: str, **kw):
    return client.chat.completions.create(model=model, messages=[{"role": "user", "content": "Hello"}], **kw)


def loaded(server) -> list[str]:
    return httpx.get(server.url + "/health").json()["loaded_models"]


def test_requests_alternate_between_models_through_aliases(client, two):
    for name, expected in [("a", "alpha"), ("b", "beta"), ("default", "alpha"), ("beta", "beta"), ("alpha", "alpha")]:
        r = chat(client, name)
        assert r.choices[0].message.content == f"Answer from {expected}."
        assert r.model == name  # the client's own name is echoed
        assert loaded(two) == [expected]
    stream = chat(client, "b", stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == "Answer from beta."


def test_models_list_every_model_with_window_and_state(client, two):
    chat(client, "b")
    data = httpx.get(two.url + "/v1/models").json()["data"]
    assert [(m["id"], m["context_window"], m["loaded"], m["aliases"]) for m in data] == [
        ("alpha", 1024, False, ["a", "default"]),
        ("beta", 512, True, ["b"]),
    ]
    assert [m.id for m in client.models.list()] == ["alpha", "beta"]
    assert client.models.retrieve("b").id == "beta"  # an alias finds its model
    chat(client, "a")
    assert httpx.get(two.url + "/v1/models/alpha").json()["loaded"] is True


def test_unknown_model_is_a_404_in_openai_shape(client, two):
    with pytest.raises(openai.NotFoundError) as err:
        chat(client, "gpt-4o")
    body = err.value.body
    assert body["code"] == "model_not_found" and body["param"] == "model" and body["type"] == "invalid_request_error"
    assert "alpha" in body["message"]
    r = httpx.get(two.url + "/v1/models/gpt-4o")
    assert r.status_code == 404 and r.json()["error"]["code"] == "model_not_found"


def test_context_window_is_per_model(client):
    long = "word " * 700  # over beta's 512, under alpha's 1024
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model="b", messages=[{"role": "user", "content": long}])
    assert err.value.body["code"] == "context_length_exceeded" and "512" in err.value.body["message"]
    assert client.chat.completions.create(model="a", messages=[{"role": "user", "content": long}]).choices[0].message.content


def test_ps_endpoint_shows_loaded_models(client, two):
    chat(client, "b")
    ps = httpx.get(two.url + "/mlxcli/ps").json()
    assert [m["name"] for m in ps["models"]] == ["beta"]
    beta = ps["models"][0]
    assert beta["state"] == "loaded" and beta["aliases"] == ["b"] and beta["context_window"] == 512
    assert beta["active_requests"] == 0 and beta["last_used"] <= time.time() and beta["unloads_at"] is None
    assert ps["queue_depth"] == 0


def test_single_model_routes_any_name_unless_strict(tokenizer_dir, make_engine, serve):
    lenient = serve(make_engine([scripted_model(tokenizer_dir, lambda p: "only", name="solo")]))
    c = openai.OpenAI(base_url=lenient.url + "/v1", api_key="x", max_retries=0)
    assert chat(c, "gpt-4o").model == "gpt-4o"
    strict = serve(make_engine([scripted_model(tokenizer_dir, lambda p: "only", name="solo")], strict_model_names=True))
    c = openai.OpenAI(base_url=strict.url + "/v1", api_key="x", max_retries=0)
    assert chat(c, "solo").choices[0].message.content == "only"
    with pytest.raises(openai.NotFoundError):
        chat(c, "gpt-4o")


def test_stream_on_one_model_survives_a_request_for_another(tokenizer_dir, make_engine, serve):
    release = threading.Event()

    def slow(prompt: str) -> str:
        release.wait(30)  # alpha's generation stays in progress until released
        return "one two three four five"

    engine = make_engine(
        [scripted_model(tokenizer_dir, slow, name="alpha"), scripted_model(tokenizer_dir, lambda p: "beta here", name="beta")],
        max_loaded_models=1,
    )
    server = serve(engine)
    c = openai.OpenAI(base_url=server.url + "/v1", api_key="x", max_retries=0)
    stream = chat(c, "alpha", stream=True)
    other: dict = {}
    thread = threading.Thread(target=lambda: other.update(r=chat(c, "beta")))
    thread.start()
    assert wait_for(lambda: httpx.get(server.url + "/health").json()["queue_depth"] == 1, timeout=30)
    health = httpx.get(server.url + "/health").json()
    assert health["active_requests"] == 1 and health["loaded_models"] == ["alpha"]
    release.set()
    assert "".join(ch.choices[0].delta.content or "" for ch in stream if ch.choices) == "one two three four five"
    thread.join(30)
    assert other["r"].choices[0].message.content == "beta here"
    assert loaded(server) == ["beta"]

"""POST /v1/embeddings through the real server, judged by the official OpenAI SDK.

One server for the module: a scripted chat model beside MiniLM (the real all-MiniLM-L6-v2 from
its PyPI wheel) and a tiny random BERT whose window is 48 tokens.
"""

from __future__ import annotations

import base64
import threading

import httpx
import numpy as np
import openai
import pytest

from mlxcli.engine.engine import EngineSettings, MlxEngine
from mlxcli.engine.kinds import served_model
from tests.support.http import openai_error, wait_for
from tests.support.models import scripted_model
from tests.support.prometheus import delta, moved, scrape, value
from tests.support.server import RunningServer

URL = "/v1/embeddings"


@pytest.fixture(scope="module")
def server(tokenizer_dir, minilm_dir, tiny_bert_dir):
    settings = EngineSettings(temperature=0.0)
    chat = scripted_model(tokenizer_dir, lambda prompt: "go " * 4000, context_window=16384)
    engine = MlxEngine([chat, served_model("minilm", minilm_dir, settings), served_model("tiny", tiny_bert_dir, settings)],
                       settings).start()
    with RunningServer(engine) as running:
        yield running
    engine.stop(grace=1)


@pytest.fixture(scope="module")
def client(server) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)


def vectors(client, inputs, **fields) -> np.ndarray:
    r = client.embeddings.create(model=fields.pop("model", "minilm"), input=inputs, encoding_format="float", **fields)
    assert [d.index for d in r.data] == list(range(len(r.data)))
    return np.array([d.embedding for d in r.data])


@pytest.mark.default_model
def test_minilm_puts_paraphrases_closer_than_unrelated_sentences(client):
    v = vectors(client, ["A man is playing a guitar.", "Someone is playing an instrument.", "The stock market fell sharply today."])
    assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)  # MiniLM normalises
    cos = v @ v.T
    assert cos[0, 1] > 0.5 > cos[0, 2] and cos[0, 1] > cos[1, 2]


@pytest.mark.default_model
def test_base64_holds_the_same_floats(client, server):
    texts = ["first text", "a second, longer piece of text"]
    floats = vectors(client, texts)
    raw = httpx.post(server.url + URL, json={"model": "minilm", "input": texts, "encoding_format": "base64"}).json()
    decoded = np.array([np.frombuffer(base64.b64decode(d["embedding"]), dtype="<f4") for d in raw["data"]])
    assert np.array_equal(decoded, floats.astype(np.float32))
    sdk = client.embeddings.create(model="minilm", input=texts)  # the SDK asks for base64 itself, and decodes it
    assert np.array_equal(np.array([d.embedding for d in sdk.data], dtype=np.float32), decoded)


@pytest.mark.default_model
def test_token_ids_embed_like_the_text_they_came_from(client, minilm_dir):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(minilm_dir))
    texts = ["Token ids are fed as they are.", "short"]
    ids = [tokenizer(t)["input_ids"] for t in texts]
    r = client.embeddings.create(model="minilm", input=texts, encoding_format="float")
    assert r.model == "minilm"
    assert r.usage.prompt_tokens == r.usage.total_tokens == sum(len(i) for i in ids)
    by_text = np.array([d.embedding for d in r.data])
    assert np.allclose(vectors(client, ids), by_text, atol=1e-6)
    assert np.allclose(vectors(client, ids[0])[0], by_text[0], atol=1e-6)  # one list of ids is one input


@pytest.mark.default_model
def test_dimensions_truncate_and_renormalise(client):
    full = vectors(client, ["truncate me"])[0]
    short = vectors(client, ["truncate me"], dimensions=64)[0]
    assert short.shape == (64,) and np.isclose(np.linalg.norm(short), 1.0, atol=1e-5)
    assert np.allclose(short, full[:64] / np.linalg.norm(full[:64]), atol=1e-5)


def test_an_embedding_request_returns_while_four_chat_streams_run(client):
    started = [threading.Event() for _ in range(4)]
    finished = [threading.Event() for _ in range(4)]
    stop = threading.Event()

    def chat(i: int) -> None:
        stream = client.chat.completions.create(model="scripted", stream=True, max_tokens=4000,
                                                messages=[{"role": "user", "content": f"story {i}"}])
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                started[i].set()
            if stop.is_set():
                stream.close()  # hang up: the server cancels the generation
                return
        finished[i].set()

    threads = [threading.Thread(target=chat, args=(i,), daemon=True) for i in range(4)]
    for t in threads:
        t.start()
    try:
        assert wait_for(lambda: all(e.is_set() for e in started), timeout=60)
        assert len(vectors(client, ["while the chat streams", "are still going"], model="tiny")) == 2
        assert not any(e.is_set() for e in finished)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=30)


BAD_INPUTS = [
    ({"input": ""}, "input"),
    ({"input": []}, "input"),
    ({"input": ["fine", ""]}, "input[1]"),
    ({"input": ["fine", 3]}, "input[1]"),
    ({"input": ["fine", {"text": "no"}]}, "input[1]"),
    ({"input": [[101, 102], []]}, "input[1]"),
    ({"input": [[101, "x"]]}, "input[0]"),
    ({"input": [101, -1]}, "input"),
    ({"input": [101, 30522, 102]}, "input"),  # outside the vocabulary
    ({"input": [[101, 102], [101, 10**12]]}, "input[1]"),
    ({"input": ["ok"] * 2049}, "input"),
    ({"input": ["ok", "word " * 60]}, "input[1]"),  # over the model's window of 48 tokens
    ({"input": "word " * 60}, "input"),
    ({"input": "ok", "dimensions": 33}, "dimensions"),  # the model has 32
    ({"input": "ok", "dimensions": 0}, "dimensions"),
    ({"input": "ok", "encoding_format": "int8"}, "encoding_format"),
    ({}, "input"),
    ({"input": "ok", "model": 7}, "model"),
]


@pytest.mark.parametrize("body, param", BAD_INPUTS)
def test_bad_input_is_a_400_naming_the_parameter(server, body, param):
    error = openai_error(httpx.post(server.url + URL, json={"model": "tiny", **body}), 400)
    assert error["param"] == param, error


def test_the_sdk_sees_bad_input_as_a_bad_request(client):
    with pytest.raises(openai.BadRequestError) as raised:
        client.embeddings.create(model="tiny", input=["ok", "word " * 60])
    assert raised.value.body["param"] == "input[1]"
    assert raised.value.body["code"] == "context_length_exceeded"


def test_chat_and_embedding_models_refuse_each_other_s_requests(client):
    with pytest.raises(openai.BadRequestError) as raised:
        client.embeddings.create(model="scripted", input="hello")
    assert raised.value.body["param"] == "model" and "chat model" in raised.value.body["message"]
    with pytest.raises(openai.BadRequestError) as raised:
        client.chat.completions.create(model="minilm", messages=[{"role": "user", "content": "hi"}])
    assert raised.value.body["param"] == "model" and "embedding model" in raised.value.body["message"]


def test_unknown_model_is_a_404_with_several_embedding_models(client):
    with pytest.raises(openai.NotFoundError):
        client.embeddings.create(model="text-embedding-3-small", input="hello")


def test_embedding_models_are_listed_with_their_kind(client):
    models = {m.id: m for m in client.models.list().data}
    assert (models["scripted"].kind, models["minilm"].kind, models["tiny"].kind) == ("chat", "embedding", "embedding")
    assert models["minilm"].context_window == 256  # sentence-transformers' max_seq_length


def test_azure_routes_embed_too(server):
    azure = openai.AzureOpenAI(azure_endpoint=server.url, api_version="2024-10-21", api_key="unused", max_retries=0)
    by_deployment = azure.embeddings.create(model="tiny", input="hello", encoding_format="float")
    v1 = openai.OpenAI(base_url=server.url + "/openai/v1", api_key="unused", max_retries=0)
    by_v1 = v1.embeddings.create(model="tiny", input="hello", encoding_format="float")
    assert by_deployment.model == by_v1.model == "tiny"
    assert np.allclose(by_deployment.data[0].embedding, by_v1.data[0].embedding, rtol=0, atol=1e-6)
    r = httpx.post(server.url + "/openai/deployments/tiny/embeddings", params={"api-version": "2024-10-21"}, json={"input": ""})
    assert r.status_code == 400 and r.json()["error"]["param"] == "input"


def test_metrics_count_embeddings_requests_by_api_and_model(server, client):
    before = scrape(server)
    by_openai = client.embeddings.create(model="tiny", input=["one text", "and a second one"])
    azure = openai.AzureOpenAI(azure_endpoint=server.url, api_version="2024-10-21", api_key="unused", max_retries=0)
    by_azure = azure.embeddings.create(model="tiny", input="hello")
    by_ollama = httpx.post(server.url + "/api/embed", json={"model": "tiny", "input": "hello there"}).json()
    openai_error(httpx.post(server.url + URL, json={"model": "tiny", "input": "word " * 60}), 400)  # over the window
    after = scrape(server)

    assert moved(before, after, "mlxcli:requests_total") == {
        (("api", "openai"), ("model", "tiny"), ("outcome", "embedded")): 1,
        (("api", "azure"), ("model", "tiny"), ("outcome", "embedded")): 1,
        (("api", "ollama"), ("model", "tiny"), ("outcome", "embedded")): 1,
    }
    assert delta(before, after, "mlxcli:requests_rejected_total", reason="invalid_request") == 1
    prompt = by_openai.usage.prompt_tokens + by_azure.usage.prompt_tokens + by_ollama["prompt_eval_count"]
    assert delta(before, after, "mlxcli:prompt_tokens_total", model="tiny") == prompt
    assert delta(before, after, "mlxcli:e2e_request_latency_seconds_count", model="tiny") == 3
    assert delta(before, after, "mlxcli:e2e_request_latency_seconds_sum", model="tiny") > 0
    # Nothing is generated: an embedding model has no token series to mislead a dashboard.
    assert not [key for key in after if key[0].startswith("mlxcli:time_to_first_token") and ("model", "tiny") in key[1]]
    assert value(after, "mlxcli:model_loaded", model="tiny") == 1.0

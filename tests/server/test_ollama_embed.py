"""Ollama's /api/embed and /api/embeddings through a real server, judged by the official ``ollama``
library and LangChain's OllamaEmbeddings against what /v1/embeddings answers for the same inputs
(a tiny random BERT with MiniLM's tokenizer, window 48 tokens)."""

from __future__ import annotations

import httpx
import numpy as np
import ollama
import pytest

from mlxcli.engine.engine import EngineSettings, MlxEngine
from mlxcli.engine.kinds import served_model
from tests.support.http import wait_for
from tests.support.models import scripted_model
from tests.support.server import RunningServer

TEXTS = ["A man is playing a guitar.", "Someone plays an instrument."]
LONG = " ".join(["guitar"] * 200)  # far over the window


@pytest.fixture(scope="module")
def server(tokenizer_dir, tiny_bert_dir):
    settings = EngineSettings(temperature=0.0)
    engine = MlxEngine([scripted_model(tokenizer_dir, lambda prompt: "hi", name="sky"), served_model("tiny", tiny_bert_dir, settings)],
                       settings).start()
    with RunningServer(engine) as running:
        yield running
    engine.stop(grace=1)


@pytest.fixture
def client(server):
    return ollama.Client(host=server.url)


def same(vectors, expected) -> bool:
    """Equal up to float rounding: a text embedded alone and inside a padded batch of others differ in the
    last bits with some BLAS kernels."""
    return np.shape(vectors) == np.shape(expected) and np.allclose(vectors, expected, rtol=0, atol=1e-6)


def v1(server, inputs, **fields) -> dict:
    r = httpx.post(server.url + "/v1/embeddings", json={"model": "tiny", "input": inputs, "encoding_format": "float", **fields}, timeout=60)
    assert r.status_code == 200, r.text
    return r.json()


def error(r: httpx.Response, status: int = 400) -> str:
    assert r.status_code == status, r.text
    assert set(r.json()) == {"error"}
    return r.json()["error"]


def post(server, path: str, body: dict) -> httpx.Response:
    return httpx.post(server.url + path, json=body, timeout=60)


def test_embed_answers_what_v1_embeddings_answers(server, client):
    expected = v1(server, TEXTS)
    answer = client.embed(model="tiny:latest", input=TEXTS)
    assert same(answer.embeddings, [d["embedding"] for d in expected["data"]])
    assert answer.model == "tiny:latest" and answer.prompt_eval_count == expected["usage"]["prompt_tokens"]
    assert answer.total_duration > 0
    assert same(client.embed(model="tiny", input=TEXTS[0]).embeddings, [expected["data"][0]["embedding"]])
    assert same(client.embeddings(model="tiny", prompt=TEXTS[0]).embedding, expected["data"][0]["embedding"])
    short = client.embed(model="tiny", input=TEXTS, dimensions=8).embeddings
    assert same(short, [d["embedding"] for d in v1(server, TEXTS, dimensions=8)["data"]]) and len(short[0]) == 8


def test_truncate_cuts_at_the_window_unless_false(server, client, tiny_bert_dir):
    from transformers import AutoTokenizer

    ids = AutoTokenizer.from_pretrained(str(tiny_bert_dir))(LONG, truncation=True, max_length=48).input_ids  # [CLS] … [SEP]
    (cut,) = client.embed(model="tiny", input=LONG).embeddings
    assert same(cut, v1(server, ids)["data"][0]["embedding"])
    assert "48 tokens" in error(post(server, "/api/embed", {"model": "tiny", "input": [TEXTS[0], LONG], "truncate": False}))
    assert "'prompt'" in error(post(server, "/api/embeddings", {"model": "tiny", "prompt": LONG}))  # the legacy route never truncates


def test_empty_input_loads_the_model_and_answers_no_vectors(server, client):
    """As on Ollama: an empty input preloads the model (keep_alive 0 unloads it), with no vectors."""
    unloaded = post(server, "/api/embed", {"model": "tiny", "input": [], "keep_alive": 0}).json()
    assert unloaded["embeddings"] == [] and "tiny:latest" not in [m.model for m in client.ps().models]
    body = post(server, "/api/embed", {"model": "tiny", "input": []}).json()
    assert "tiny:latest" in [m.model for m in client.ps().models]
    assert body.pop("total_duration") >= body.pop("load_duration") > 0
    assert body == {"model": "tiny", "embeddings": [], "prompt_eval_count": 0}
    assert client.embed(model="tiny", input="").embeddings == []
    assert post(server, "/api/embeddings", {"model": "tiny", "prompt": ""}).json() == {"embedding": []}


@pytest.mark.parametrize(
    "path, body, needle",
    [
        ("/api/embed", {"model": "tiny", "input": [1, 2]}, "input[0]"),
        ("/api/embed", {"model": "tiny", "input": 5}, "'input'"),
        ("/api/embed", {"model": "tiny", "input": "x", "dimensions": 0}, "dimensions"),
        ("/api/embed", {"model": "tiny", "input": "x", "dimensions": 4096}, "dimensions"),
        ("/api/embed", {"model": "tiny", "input": "x", "truncate": "yes"}, "truncate"),
        ("/api/embed", {"model": "tiny", "input": "x", "keep_alive": "soon"}, "keep_alive"),
        ("/api/embed", {"model": "tiny", "input": "x", "options": {"temprature": 1}}, "options.temprature"),
        ("/api/embed", {"model": "sky", "input": "x"}, '"sky" does not support embeddings'),
        ("/api/embeddings", {"model": "tiny", "prompt": ["x"]}, "'prompt'"),
        ("/api/embeddings", {"input": "x"}, "'model'"),
    ],
)
def test_bad_input_is_an_ollama_400(server, path, body, needle):
    assert needle in error(post(server, path, body))


def test_listed_with_the_embedding_capability_and_keep_alive_0_unloads(server, client):
    assert [m.model for m in client.list().models] == ["sky:latest", "tiny:latest"]
    assert client.show("tiny").capabilities == ["embedding"]
    client.embed(model="tiny", input="hello", keep_alive="10m")
    assert "tiny:latest" in [m.model for m in client.ps().models]
    client.embed(model="tiny", input="hello", keep_alive=0)
    assert wait_for(lambda: "tiny:latest" not in [m.model for m in client.ps().models])


def test_langchain_ollama_embeddings(server):
    from langchain_ollama import OllamaEmbeddings

    embeddings = OllamaEmbeddings(model="tiny", base_url=server.url)
    assert same(embeddings.embed_documents(TEXTS), [d["embedding"] for d in v1(server, TEXTS)["data"]])

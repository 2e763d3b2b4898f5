"""`mlxcli bench --embeddings`: the engine in-process and servers over real HTTP, at several batch sizes."""

from __future__ import annotations

import random

import pytest

from mlxcli.bench.embeddings import make_input
from mlxcli.engine.engine import EngineSettings
from mlxcli.engine.kinds import served_model
from tests.bench.test_bench_cli import bench, bench_process, rows


@pytest.fixture
def embedding_server(tiny_bert_dir, run_engine, serve):
    settings = EngineSettings()
    return serve(run_engine([served_model("tiny", tiny_bert_dir, settings)], settings))


def test_inputs_have_exactly_the_asked_length(tiny_bert_dir):
    tokenizer = served_model("tiny", tiny_bert_dir, EngineSettings()).tokenizer
    rng = random.Random(1)
    for tokens in (3, 17, 48):
        text = make_input(tokenizer.encode, tokens, rng)
        assert len(tokenizer.encode(text)) == tokens, text
    with pytest.raises(ValueError):
        make_input(tokenizer.encode, 1, rng)  # [CLS] and [SEP] alone are two


def test_a_server_at_each_batch_size(embedding_server, tiny_bert_dir):
    doc = bench("--embeddings", "--url", embedding_server.url, "--model", str(tiny_bert_dir), "--request-model", "tiny",
                "--batch-sizes", "1,5", "--prompt-tokens", "20", "--repeat", "2", "--warmup", "0")
    assert doc["scenario"] == "embeddings" and [t["kind"] for t in doc["targets"]] == ["http"]
    assert [(r["batch"], r["input_tokens"], r["runs"], r["errors"]) for r in rows(doc)] == [(1, 20, 2, 0), (5, 20, 2, 0)]
    for r in rows(doc):
        assert r["inputs_per_s"]["median"] > 0
        assert r["tokens_per_s"]["median"] == pytest.approx(r["inputs_per_s"]["median"] * 20)


def test_a_refusal_is_counted_with_its_message(scripted_engine, serve, tiny_bert_dir):
    chat_only = serve(scripted_engine(lambda prompt: "hi"))
    doc = bench("--embeddings", "--url", chat_only.url, "--model", str(tiny_bert_dir), "--batch-sizes", "2",
                "--prompt-tokens", "10", "--repeat", "1", "--warmup", "0")
    (row,) = rows(doc)
    assert row["errors"] == 1 and row["runs"] == 0 and "chat model" in row["error_messages"][0]


def test_the_engine_in_process_beside_a_server(embedding_server, tiny_bert_dir):
    doc = bench_process("--embeddings", "--engine", "--url", embedding_server.url, "--model", str(tiny_bert_dir),
                        "--request-model", "tiny", "--batch-sizes", "4", "--prompt-tokens", "12", "--repeat", "2")
    assert [t["kind"] for t in doc["targets"]] == ["engine", "http"]
    assert [(r["target"], r["runs"], r["errors"]) for r in rows(doc)] == [("engine", 2, 0), (doc["targets"][1]["name"], 2, 0)]


def test_the_chat_scenarios_point_an_embedding_model_to_embeddings(embedding_server, tiny_bert_dir):
    out = bench("--url", embedding_server.url, "--model", str(tiny_bert_dir), ok=False)
    assert out["exit_code"] == 1 and "is an embedding model: measure it with mlxcli bench --embeddings" in out["output"]

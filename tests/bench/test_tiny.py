"""``tiny:WIDTHxLAYERS``: a random model with the default model's tokenizer, built once, that only
``mlxcli bench`` names (never a server, never a model listing)."""

from __future__ import annotations

import json

import pytest

from mlxcli.bench import tiny
from mlxcli.core.errors import InvalidRequest, ModelError
from mlxcli.models import list_local_models, resolve_model, validate_model_name
from tests.bench.test_bench_cli import bench_process, rows


@pytest.fixture(scope="module")
def tiny_dir(test_home, default_model_dir):
    return tiny.tiny_model("tiny:32x2", home=test_home).path


def test_the_model_has_the_default_model_shape_at_the_asked_size(tiny_dir, default_model_dir):
    config, source = json.loads((tiny_dir / "config.json").read_text()), json.loads((default_model_dir / "config.json").read_text())
    assert (config["hidden_size"], config["num_hidden_layers"]) == (32, 2)
    assert config["vocab_size"] == source["vocab_size"] and config["tie_word_embeddings"] is True
    assert config["num_attention_heads"] * config["head_dim"] == 32
    assert (tiny_dir / "tokenizer.json").read_bytes() == (default_model_dir / "tokenizer.json").read_bytes()
    assert json.loads((tiny_dir / "mlxcli.json").read_text())["parameters"] > source["vocab_size"] * 32


def test_it_is_built_once(tiny_dir, test_home):
    stamp = (tiny_dir / "model.safetensors").stat().st_mtime_ns
    assert tiny.tiny_model("tiny:32x2", home=test_home).path == tiny_dir
    assert (tiny_dir / "model.safetensors").stat().st_mtime_ns == stamp


@pytest.mark.parametrize("name", ["tiny:", "tiny:32", "tiny:32x", "tiny:x2", "tiny:30x2", "tiny:8x2", "tiny:32x0",
                                  "tiny:32x65", "tiny:-32x2", "tiny:32x2x2"])
def test_bad_sizes_are_clear_errors(name):
    with pytest.raises(InvalidRequest) as err:
        tiny.parse(name)
    assert err.value.param == "model" and "tiny:" in err.value.message


def test_no_server_or_listing_can_reach_it(tiny_dir, test_home):
    with pytest.raises(InvalidRequest):
        validate_model_name("tiny:32x2", allow_paths=False)  # what every server checks a request's model with
    for name in ("tiny-32x2", "tiny:32x2"):
        with pytest.raises((ModelError, InvalidRequest)):
            resolve_model(name, home=test_home, download=False)
    assert all("tiny" not in m.name for m in list_local_models(home=test_home))


def test_greedy_answers_run_to_max_tokens(tiny_dir, test_home):
    """Special tokens score 0 where the best token scores above: no answer ends early."""
    doc = bench_process("--model", "tiny:32x2", "--turns", "2", "--gen-tokens", "24", "--repeat", "2", "--warmup", "0",
                        home=test_home)
    assert doc["targets"][0]["model"] == "tiny:32x2" and doc["targets"][0]["dtype"] == "float32"
    for r in rows(doc):
        assert r["errors"] == 0 and r["tokens_per_request"]["min"] == 24

"""The embedding model kind in the engine: loading, pooling, batching, scheduling beside chat."""

from __future__ import annotations

import threading
from pathlib import Path

import mlx.core as mx
import pytest

from mlxcli.core.embeddings import EmbeddingRequest
from mlxcli.core.errors import InvalidRequest, ModelError
from mlxcli.core.events import Finish
from mlxcli.core.request import ChatRequest, Message, Sampling
from mlxcli.engine.embeddings import model as embeddings
from mlxcli.engine.embeddings.work import plan
from mlxcli.engine.kinds import served_model
from mlxcli.engine.settings import EngineSettings
from tests.support.embedding_models import make_tiny_bert_dir, make_tiny_decoder_dir, write_sentence_transformers
from tests.support.models import scripted_model

TEXTS = ["a", "the quick brown fox jumps over the lazy dog", "hello world", "one two three four five six seven", "x y"]


def embed(engine, inputs, **fields) -> list[list[float]]:
    return engine.embed(EmbeddingRequest(list(inputs), **fields)).result(timeout=60).vectors


def test_a_batch_gives_each_input_the_vector_it_gets_alone(tiny_bert_dir, make_engine):
    """Padding never reaches a vector: the batch is masked, and pooling counts real tokens only."""
    engine = make_engine([served_model("bert", tiny_bert_dir, EngineSettings())])
    together = mx.array(embed(engine, TEXTS))
    alone = mx.array([embed(engine, [text])[0] for text in TEXTS])
    assert mx.allclose(together, alone, atol=1e-5).item()
    assert mx.allclose(mx.linalg.norm(together, axis=-1), mx.ones(len(TEXTS)), atol=1e-5).item()  # normalised


@pytest.mark.parametrize("pooling", ["cls_token", "max_tokens", "mean_sqrt_len_tokens"])
def test_pooling_follows_the_sentence_transformers_config(minilm_dir, tmp_path, make_engine, pooling):
    path = make_tiny_bert_dir(minilm_dir, tmp_path / "m", pooling=pooling)
    write_sentence_transformers(path, pooling, 32, normalize=False)
    engine = make_engine([served_model("bert", path, EngineSettings())])
    loaded = engine.registry.default.loaded.model
    ids = engine.registry.default.tokenizer.encode(TEXTS[1])
    hidden = loaded.hidden(mx.array([ids]), mx.array([len(ids)]))[0]
    expected = {"cls_token": hidden[0], "max_tokens": hidden.max(axis=0),
                "mean_sqrt_len_tokens": hidden.sum(axis=0) / len(ids) ** 0.5}[pooling]
    assert mx.allclose(mx.array(embed(engine, [TEXTS[1]])[0]), expected, atol=1e-5).item()
    assert mx.allclose(mx.array(embed(engine, TEXTS)[1]), expected, atol=1e-5).item()  # and inside a padded batch


def test_roberta_style_positions_start_after_the_padding_index(minilm_dir, tmp_path, make_engine):
    bert = make_tiny_bert_dir(minilm_dir, tmp_path / "bert", max_seq_length=None)
    roberta = make_tiny_bert_dir(minilm_dir, tmp_path / "roberta", model_type="xlm-roberta", max_seq_length=None)
    engine = make_engine([served_model("bert", bert, EngineSettings()), served_model("roberta", roberta, EngineSettings())])
    assert [m.context_window for m in engine.models()] == [64, 62]  # positions 2..63 are left for tokens
    assert embed(engine, ["hello"], model="bert") != embed(engine, ["hello"], model="roberta")


def test_mpnet_s_relative_position_bias_is_applied_in_a_padded_batch(minilm_dir, tmp_path, make_engine):
    import shutil

    mpnet = make_tiny_bert_dir(minilm_dir, tmp_path / "mpnet", model_type="mpnet", max_seq_length=None)
    flat = Path(shutil.copytree(mpnet, tmp_path / "flat"))  # the same weights but for a zero position bias
    weights = mx.load(str(flat / "model.safetensors"))
    weights["mpnet.encoder.relative_attention_bias.weight"] = mx.zeros((32, 4))
    mx.save_safetensors(str(flat / "model.safetensors"), weights)
    engine = make_engine([served_model("mpnet", mpnet, EngineSettings()), served_model("flat", flat, EngineSettings())])
    assert engine.models()[0].context_window == 62
    together = mx.array(embed(engine, TEXTS, model="mpnet"))
    assert mx.allclose(together, mx.array([embed(engine, [t], model="mpnet")[0] for t in TEXTS]), atol=1e-5).item()
    assert not mx.allclose(mx.array(embed(engine, TEXTS, model="flat")), together, atol=1e-3).item()


def test_relative_position_buckets_are_mpnet_s():
    from mlxcli.engine.embeddings.bert import relative_position_bucket

    distances = mx.array([-200, -128, -20, -8, -7, -1, 0, 1, 7, 8, 20, 128, 200])
    # Hugging Face's MPNetEncoder.relative_position_bucket(·, num_buckets=32, max_distance=128), worked by hand:
    # below 8 one bucket per distance, then log(d / 8) / log(16) * 8 more, at most 15; keys ahead: + 16.
    assert relative_position_bucket(distances, 32).tolist() == [15, 15, 10, 8, 7, 1, 0, 17, 23, 24, 26, 31, 31]


def test_a_decoder_embeds_with_its_last_token(tokenizer_dir, tmp_path, make_engine):
    """Qwen3-Embedding style: mlx-lm's architecture, weights without ``model.``, last-token pooling."""
    from mlx_lm.models import qwen3
    from mlx_lm.utils import load_config

    path = make_tiny_decoder_dir(tokenizer_dir, tmp_path / "dec")
    engine = make_engine([served_model("dec", path, EngineSettings())])
    reference = qwen3.Model(qwen3.ModelArgs.from_dict(load_config(path)))
    reference.model.load_weights(str(path / "model.safetensors"))
    tokenizer = engine.registry.default.tokenizer
    expected = []
    for text in TEXTS:
        last = reference.model(mx.array([tokenizer.encode(text)]))[0, -1]
        expected.append(last / mx.linalg.norm(last))
    assert mx.allclose(mx.array(embed(engine, TEXTS)), mx.stack(expected), atol=1e-4).item()


def test_inputs_are_batched_by_length_within_the_bounds():
    lengths = [5, 300, 7, 6, 290, 8, 5, 5, 9000]
    batches = plan(lengths, max_batch=3, max_tokens=1000)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    flat = [lengths[i] for b in batches for i in b]
    assert flat == sorted(lengths)  # neighbours in length share a batch
    assert all(len(b) <= 3 for b in batches)
    assert all(len(b) * max(lengths[i] for i in b) <= 1000 for b in batches if len(b) > 1)
    assert [8] in batches  # the input longer than the budget is a batch of its own


def test_context_length_lowers_the_window(tiny_bert_dir):
    from mlxcli.engine.settings import ModelSpec

    assert served_model("bert", tiny_bert_dir, EngineSettings(context_length=20)).context_window == 20
    assert served_model("bert", tiny_bert_dir, EngineSettings(), ModelSpec("bert", context_length=30)).context_window == 30
    assert served_model("bert", tiny_bert_dir, EngineSettings(context_length=4096)).context_window == 48  # only lowers


def test_bad_inputs_are_refused_before_anything_runs(tiny_bert_dir, make_engine):
    engine = make_engine([served_model("bert", tiny_bert_dir, EngineSettings())])
    cases = [
        (EmbeddingRequest(["ok", "word " * 60]), "input[1]"),  # 62 tokens, over the 48 of sentence_bert_config
        (EmbeddingRequest(["word " * 60], listed=False), "input"),
        (EmbeddingRequest([[101, 30522, 102]], listed=True), "input[0]"),  # outside the vocabulary
        (EmbeddingRequest(["ok"], dimensions=33), "dimensions"),  # the model has 32
    ]
    for request, param in cases:
        with pytest.raises(InvalidRequest) as err:
            engine.embed(request)
        assert err.value.param == param, err.value.message


def test_dimensions_keep_the_first_components_renormalised(tiny_bert_dir, make_engine):
    engine = make_engine([served_model("bert", tiny_bert_dir, EngineSettings())])
    full = mx.array(embed(engine, ["hello world"])[0])
    short = mx.array(embed(engine, ["hello world"], dimensions=8)[0])
    assert short.shape == (8,)
    assert mx.allclose(short, full[:8] / mx.linalg.norm(full[:8]), atol=1e-5).item()


def test_chat_and_embeddings_each_go_to_a_model_of_their_kind(tiny_bert_dir, tokenizer_dir, make_engine):
    engine = make_engine([scripted_model(tokenizer_dir, lambda p: "hi"), served_model("bert", tiny_bert_dir, EngineSettings())])
    assert embed(engine, ["hello"])  # no model named: the embedding model
    assert embed(engine, ["hello"], model="text-embedding-3-small")  # the only embedding model answers any name
    with pytest.raises(InvalidRequest, match="chat model") as err:
        engine.embed(EmbeddingRequest(["hello"], model="scripted"))
    assert err.value.param == "model"
    with pytest.raises(InvalidRequest, match="embedding model") as err:
        engine.submit(ChatRequest([Message("user", "hi")], model="bert"))
    assert err.value.param == "model"
    # One model of each kind fits in memory with the default budget of one loaded model.
    assert engine.stats()["loaded_models"] == ["scripted", "bert"]


def test_embeddings_run_between_the_decode_steps_of_a_long_generation(tiny_bert_dir, tokenizer_dir, make_engine):
    engine = make_engine([scripted_model(tokenizer_dir, lambda p: "go " * 3000, context_window=8192),
                          served_model("bert", tiny_bert_dir, EngineSettings())])
    generation = engine.submit(ChatRequest([Message("user", "write")], Sampling(max_tokens=3000)))
    first = next(iter(generation))
    finished = threading.Event()

    def read() -> None:
        for event in generation:
            if isinstance(event, Finish):
                finished.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    assert first and embed(engine, TEXTS * 10)  # five batches or so
    assert not finished.is_set() and generation.generated_tokens < 3000
    generation.cancel()
    reader.join(timeout=30)


@pytest.mark.parametrize("change, error", [
    (lambda m: m.replace("Normalize", "Dense"), "unsupported module"),
    (lambda m: m.replace('"1_Pooling"', '"../../1_Pooling"'), "leaves the model directory"),
    (lambda m: m.replace('"1_Pooling"', '"nowhere"'), "cannot read"),
])
def test_a_broken_sentence_transformers_config_is_a_clear_error(tiny_bert_dir, tmp_path, change, error):
    import shutil

    path = Path(shutil.copytree(tiny_bert_dir, tmp_path / "model"))
    (path / "modules.json").write_text(change((path / "modules.json").read_text()))
    with pytest.raises(ModelError, match=error):
        served_model("model", path, EngineSettings())


def test_an_architecture_nothing_runs_is_refused_when_the_model_is_configured(tiny_bert_dir, tmp_path):
    import json
    import shutil

    path = Path(shutil.copytree(tiny_bert_dir, tmp_path / "nomic"))
    config = json.loads((path / "config.json").read_text())
    (path / "config.json").write_text(json.dumps({**config, "model_type": "nomic_bert"}))
    with pytest.raises(ModelError, match="'nomic_bert' is neither a BERT-family encoder"):
        served_model("nomic", path, EngineSettings())


def test_a_directory_without_pooling_is_a_chat_model(tiny_model_dir):
    assert embeddings.embedding_config(tiny_model_dir, {}) is None


def test_the_encoder_s_gelu_is_the_exact_erf_gelu():
    import mlx.nn as nn

    from mlxcli.engine.embeddings.bert import gelu

    x = mx.linspace(-12, 12, 101_101)
    assert mx.abs(gelu(x) - nn.gelu(x)).max().item() < 1e-5
    assert gelu(x.reshape(1001, 101)).shape == (1001, 101)  # compiled for one shape, right for any


def test_a_cancelled_request_stops_between_batches_and_frees_its_model(tiny_bert_dir):
    from collections import deque

    from mlxcli.engine.embeddings.work import EmbedJob, Embedder
    from mlxcli.engine.registry import ModelRegistry

    served = served_model("bert", tiny_bert_dir, EngineSettings())
    registry = ModelRegistry([served])
    embedder = Embedder(registry)
    tokens = [served.tokenizer.encode(t) for t in TEXTS]
    job = EmbedJob(EmbeddingRequest(list(TEXTS)), served, tokens=tokens, batches=deque(plan([len(t) for t in tokens], max_batch=2)))
    embedder.add(job)
    embedder.step()  # the first batch: the model is now held for this request
    assert served.in_use == 1 and len(embedder) == 1 and sum(v is not None for v in job.vectors) == 2
    job.cancelled.set()
    embedder.step()
    assert len(embedder) == 0 and served.in_use == 0  # dropped, its model free to unload
    assert not job.done.is_set() and sum(v is not None for v in job.vectors) == 2  # nothing more was computed


def test_embedding_models_swap_within_their_own_budget(tiny_bert_dir, minilm_dir, tmp_path, tokenizer_dir, make_engine):
    other = make_tiny_bert_dir(minilm_dir, tmp_path / "other", seed=1)
    engine = make_engine([scripted_model(tokenizer_dir, lambda p: "hi"), served_model("a", tiny_bert_dir, EngineSettings()),
                          served_model("b", other, EngineSettings())], max_loaded_models=1)
    list(engine.submit(ChatRequest([Message("user", "hi")], sampling=Sampling(max_tokens=4))))
    chat_cache = engine.stats()["prompt_cache"]["entries"]
    first = embed(engine, ["hello"], model="a")
    assert engine.stats()["loaded_models"] == ["scripted", "a"]
    assert embed(engine, ["hello"], model="b") != first
    assert engine.stats()["loaded_models"] == ["scripted", "b"]  # a made room for b; the chat model stayed
    assert engine.stats()["prompt_cache"]["entries"] == chat_cache > 0  # and so did its prompt cache
    assert embed(engine, ["hello"], model="a") == first  # loaded again, the same weights

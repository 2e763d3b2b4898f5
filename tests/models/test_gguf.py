"""GGUF → MLX conversion on tiny synthetic llama GGUFs (see ggufs.py for how they are built)."""

from __future__ import annotations

import json
from pathlib import Path

import mlx.core as mx
import numpy as np
import pytest
from mlx_lm.tokenizer_utils import BPEStreamingDetokenizer
from mlx_lm.tokenizer_utils import load as load_tokenizer
from mlx_lm.utils import load_model

from mlxcli.core.errors import ModelError
from mlxcli.models.gguf import convert_gguf, read_gguf_header
from mlxcli.models.gguf.llama import unpermute_rows
from tests.models.ggufs import (
    CHAT_TEMPLATE,
    F16,
    F32,
    Q4_0,
    Q4_1,
    Q4_K,
    Q8_0,
    TEXTS,
    USER_DEFINED,
    reference_logits,
)

PROMPT = "The quick brown fox jumps over the lazy dog, 2024 times."


def converted_logits(model_dir: Path, tokens: list[int]) -> np.ndarray:
    model, _ = load_model(model_dir)
    return np.array(model(mx.array([tokens])).astype(mx.float32))[0]


@pytest.mark.parametrize(
    ("types", "writer", "tolerance"),
    [
        (F32, "mlx", 1e-5),
        (F16, "mlx", 2e-2),
        (Q8_0, "raw", 2e-2),
        (Q4_0, "raw", 2e-2),
        (Q4_1, "raw", 2e-2),
        ({"token_embd": Q8_0, "blk.0.ffn_down": Q4_0, "blk.1.attn_v": F16}, "raw", 2e-2),
    ],
    ids=["F32", "F16", "Q8_0", "Q4_0", "Q4_1", "mixed"],
)
def test_converted_model_computes_like_the_source_weights(tiny_gguf, tmp_path, types, writer, tolerance):
    src = tiny_gguf(types=types, writer=writer)
    convert_gguf(src.path, tmp_path / "out")
    tokens = src.tokenizer.encode(PROMPT).ids
    assert len(tokens) > 8  # RoPE positions > 0 are what make the q/k row order matter

    expected = reference_logits(src.config, src.hf_weights, tokens)
    scale = np.abs(expected).max()
    np.testing.assert_allclose(converted_logits(tmp_path / "out", tokens), expected, atol=tolerance * scale, rtol=0)
    # The test can fail: a converter that kept llama.cpp's q/k row order would be far off.
    unfixed = reference_logits(src.config, src.gguf_layout_weights, tokens)
    assert np.abs(unfixed - expected).max() > 0.3 * scale


def test_quantization_config_has_per_layer_overrides(tiny_gguf, tmp_path):
    src = tiny_gguf(types={"blk.0.attn_q": Q4_1, "blk.0.attn_k": Q4_0, "blk.1.ffn_up": Q8_0, "token_embd": F16})
    convert_gguf(src.path, tmp_path / "out")
    config = json.loads((tmp_path / "out" / "config.json").read_text())
    q = config["quantization"]
    assert (q["group_size"], q["bits"]) == (32, 4)
    assert q["model.layers.1.mlp.up_proj"] == {"group_size": 32, "bits": 8, "mode": "affine"}
    assert "model.layers.0.self_attn.q_proj" not in q  # same as the default
    model, _ = load_model(tmp_path / "out")
    assert model.model.layers[1].mlp.up_proj.bits == 8
    assert model.model.layers[0].self_attn.q_proj.bits == 4
    assert type(model.model.embed_tokens).__name__ == "Embedding"  # F16 stays a plain embedding


def test_config_matches_the_gguf_hyperparameters(tiny_gguf, tmp_path):
    src = tiny_gguf(tie=False)
    convert_gguf(src.path, tmp_path / "out")
    config = json.loads((tmp_path / "out" / "config.json").read_text())
    for key, value in src.config.items():
        assert config[key] == pytest.approx(value), key
    assert config["tie_word_embeddings"] is False
    assert "quantization" not in config
    tokens = src.tokenizer.encode(PROMPT).ids
    np.testing.assert_allclose(converted_logits(tmp_path / "out", tokens),
                               reference_logits(src.config, src.hf_weights, tokens), atol=1e-4)


def test_unpermute_rows_inverts_llama_cpp_permutation():
    from mlx_lm.gguf import permute_weights

    hf = np.arange(8 * 6 * 3).reshape(8 * 6, 3)
    for heads in (1, 2, 3, 6):
        stored = permute_weights(hf, heads)
        assert not np.array_equal(stored, hf)
        np.testing.assert_array_equal(np.array(unpermute_rows(mx.array(stored), heads)), hf)


@pytest.mark.parametrize("pre", ["gpt-2", "smollm", "llama-bpe"])
def test_tokenizer_encodes_like_the_original(tiny_gguf, tmp_path, pre):
    src = tiny_gguf(pre=pre)
    convert_gguf(src.path, tmp_path / "out")
    tokenizer = load_tokenizer(tmp_path / "out")
    bos = src.metadata["tokenizer.ggml.bos_token_id"]
    for text in TEXTS:
        expected = src.tokenizer.encode(text).ids
        ids = tokenizer.encode(text)
        if pre == "llama-bpe":  # llama.cpp adds BOS by default for llama3 vocabularies
            assert ids[0] == bos
            ids = ids[1:]
        assert ids == expected, text
        assert tokenizer.decode(expected) == text
    user_id = src.metadata["tokenizer.ggml.tokens"].index(USER_DEFINED)
    assert user_id in tokenizer.encode("x <tool> y")


def test_digits_are_split_one_by_one_for_smollm(tiny_gguf, tmp_path):
    src = tiny_gguf(pre="smollm")
    convert_gguf(src.path, tmp_path / "out")
    tokenizer = load_tokenizer(tmp_path / "out")
    pieces = [tokenizer.decode([i]) for i in tokenizer.encode("year 2024")]
    assert pieces[-4:] == ["2", "0", "2", "4"]


def test_streaming_detokenizer_and_chat_template(tiny_gguf, tmp_path):
    src = tiny_gguf()
    convert_gguf(src.path, tmp_path / "out")
    tokenizer = load_tokenizer(tmp_path / "out")
    assert isinstance(tokenizer.detokenizer, BPEStreamingDetokenizer)
    text = "naïve café — “quotes” 日本語 🙂 and\n\ttabs"
    detok = tokenizer.detokenizer
    detok.reset()
    for token in tokenizer.encode(text):
        detok.add_token(token)
    detok.finalize()
    assert detok.text == text

    assert tokenizer.chat_template == CHAT_TEMPLATE
    prompt = tokenizer.apply_chat_template([{"role": "user", "content": "Hi"}], add_generation_prompt=True,
                                           tokenize=False)
    assert prompt == "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    eos = src.metadata["tokenizer.ggml.eos_token_id"]
    assert tokenizer.eos_token_ids == {eos}
    assert tokenizer.encode(prompt)[:1] == [src.metadata["tokenizer.ggml.bos_token_id"]]
    generation = json.loads((tmp_path / "out" / "generation_config.json").read_text())
    assert generation["eos_token_id"] == eos


def test_progress_is_reported(tiny_gguf, tmp_path):
    src = tiny_gguf()
    events = []
    convert_gguf(src.path, tmp_path / "out", progress=lambda *e: events.append(e))
    convert = [e for e in events if e[0] == "convert"]
    assert convert[-1][1] == convert[-1][2] == len(read_gguf_header(src.path).tensors)
    assert [e[0] for e in events][-1] == "check"


def _q4k_tensor(shape: tuple[int, int]) -> tuple[int, tuple[int, int], bytes]:
    return Q4_K, shape, bytes(shape[0] * shape[1] // 256 * 144)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"metadata": {"general.architecture": "qwen2"}}, "architecture 'qwen2'"),
        ({"extra_tensors": {"blk.0.attn_q.weight": _q4k_tensor((64, 64))}}, "Q4_K"),
        ({"metadata": {"tokenizer.ggml.model": "llama"}}, "tokenizer model 'llama'"),
        ({"metadata": {"tokenizer.ggml.pre": "klingon"}}, "pre-tokenizer 'klingon'"),
        ({"drop_metadata": ("llama.block_count",)}, "llama.block_count"),
        ({"drop_metadata": ("tokenizer.ggml.merges",)}, "tokenizer.ggml.merges"),
        ({"extra_tensors": {"blk.0.attn_q.bias": (F32, (64,), bytes(256))}}, "unexpected tensor"),
        ({"extra_tensors": {"rope_freqs.weight": (F32, (8,), bytes(32))}}, "rope_freqs"),
        ({"metadata": {"llama.rope.scaling.type": "yarn"}}, "yarn"),
    ],
    ids=["arch", "q4_k", "spm-tokenizer", "pre", "no-block-count", "no-merges", "bias", "rope-freqs", "yarn"],
)
def test_unsupported_files_are_refused_before_writing(tiny_gguf, tmp_path, options, message):
    src = tiny_gguf(**options)
    with pytest.raises(ModelError, match=message):
        convert_gguf(src.path, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_truncated_or_foreign_files_are_refused(tiny_gguf, tmp_path):
    src = tiny_gguf(types=Q8_0)
    data = src.path.read_bytes()
    truncated = tmp_path / "truncated.gguf"
    truncated.write_bytes(data[: len(data) - 4096])
    with pytest.raises(ModelError, match="past the end"):
        convert_gguf(truncated, tmp_path / "out1")
    header_only = tmp_path / "header.gguf"
    header_only.write_bytes(data[:2000])
    with pytest.raises(ModelError, match="not a readable GGUF"):
        convert_gguf(header_only, tmp_path / "out2")
    foreign = tmp_path / "foreign.gguf"
    foreign.write_bytes(b"PK\x03\x04" + bytes(100))
    with pytest.raises(ModelError, match="not a GGUF"):
        convert_gguf(foreign, tmp_path / "out3")
    assert not any((tmp_path / f"out{i}").exists() for i in (1, 2, 3))

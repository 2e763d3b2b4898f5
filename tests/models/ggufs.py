"""Synthetic llama GGUF files for the conversion and model-resolution tests.

``build_tiny_gguf(path, ...)`` (the ``tiny_gguf`` fixture, in the test's tmp dir) writes a
2-layer llama GGUF the way llama.cpp lays it out (q/k rows permuted, quantized blocks, byte-level
BPE vocabulary in the metadata) and returns, next to it, what the converted model must
reproduce: the weights in Hugging Face layout and the tokenizer the vocabulary was trained with.

Two writers are used on purpose: ``mx.save_gguf`` (F32/F16: it cannot write quantized types)
and a small writer of our own (``write_gguf``) for Q8_0/Q4_0/Q4_1 blocks and for types the
converter must refuse (Q4_K). The un-permuted reference comes from ``mlx_lm.gguf.permute_weights``
(llama.cpp's forward permutation), not from the code under test.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

F32, F16, Q4_0, Q4_1, Q8_0, Q4_K = 0, 1, 2, 3, 8, 12
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
USER_DEFINED = "<tool>"
UNREACHABLE = "\u0120zebra"  # " zebra" in byte-level form
CHAT_TEMPLATE = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + "
    "'<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
CORPUS = [
    "The quick brown fox jumps over the lazy dog. The year 2024 had 366 days!",
    "Hello world, hello there. It's a test; they're here and we've done it.",
    "def f(x):\n    return x**2 + 10_000\n\n  leading spaces\tand\ttabs",
    "naïve café — “quotes” 日本語 🙂 1234567890 numbers 42 and 7 and 365.",
    "In 2024, 2024 and 2025 follow 2023; 10_000 or 366 or 1999.",
] * 20
TEXTS = [
    "Hello world",
    "The year 2024 had 366 days.",
    "  leading spaces\tand\ttabs\n\nnew lines",
    "naïve café — “quotes” 日本語 🙂",
    "<|im_start|>user\nHi<|im_end|>\n",
    "def f(x):\n    return x**2 + 10_000",
    "call <tool> now",
    "unseen Zebra 987654 ¿qué? a zebra",
]
HPARAMS = {"hidden": 64, "heads": 4, "kv_heads": 2, "layers": 2, "ffn": 128}

# ---------------------------------------------------------------------------------------------
# A minimal GGUF v3 writer (little-endian, 32-byte alignment)
# ---------------------------------------------------------------------------------------------


def _gguf_string(text: str) -> bytes:
    raw = text.encode("utf-8")
    return struct.pack("<Q", len(raw)) + raw


def _gguf_value(value: Any) -> bytes:
    if isinstance(value, bool):
        return struct.pack("<IB", 7, value)
    if isinstance(value, int):
        return struct.pack("<II", 4, value)
    if isinstance(value, float):
        return struct.pack("<If", 6, value)
    if isinstance(value, str):
        return struct.pack("<I", 8) + _gguf_string(value)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return struct.pack("<IIQ", 9, 8, len(value)) + b"".join(_gguf_string(v) for v in value)
    if isinstance(value, list):
        return struct.pack("<IIQ", 9, 5, len(value)) + np.asarray(value, "<i4").tobytes()
    raise TypeError(f"cannot write {value!r}")


def write_gguf(path: Path, metadata: dict[str, Any], tensors: dict[str, tuple[int, tuple[int, ...], bytes]]) -> None:
    """``tensors``: name -> (ggml type, numpy-order shape, raw data)."""
    out = bytearray(b"GGUF") + struct.pack("<IQQ", 3, len(tensors), len(metadata))
    for key, value in metadata.items():
        out += _gguf_string(key) + _gguf_value(value)
    offset, blobs = 0, []
    for name, (ggml_type, shape, raw) in tensors.items():
        out += _gguf_string(name) + struct.pack("<I", len(shape))
        out += b"".join(struct.pack("<Q", d) for d in reversed(shape))
        out += struct.pack("<IQ", ggml_type, offset)
        blobs.append(raw)
        offset += -(-len(raw) // 32) * 32
    out += bytes(-len(out) % 32)
    for raw in blobs:
        out += raw + bytes(-len(raw) % 32)
    path.write_bytes(bytes(out))


def encode_tensor(
    values_rng: np.random.Generator, ggml_type: int, shape: tuple[int, ...], scale: float
) -> tuple[bytes, np.ndarray]:
    """Random data of a GGUF type: (raw bytes, the float32 values they stand for)."""
    if ggml_type in (F32, F16):
        dtype = np.float32 if ggml_type == F32 else np.float16
        values = (values_rng.standard_normal(shape) * scale).astype(dtype)
        return values.tobytes(), values.astype(np.float32)
    rows, cols = int(np.prod(shape[:-1])), shape[-1]
    blocks = rows * cols // 32
    step = scale / (64 if ggml_type == Q8_0 else 4)  # values of about +-scale
    d = (values_rng.uniform(0.5, 1.0, blocks) * step).astype(np.float16)
    if ggml_type == Q8_0:
        q = values_rng.integers(-127, 128, (blocks, 32)).astype(np.int8)
        raw = b"".join(d[i].tobytes() + q[i].tobytes() for i in range(blocks))
        values = d.astype(np.float32)[:, None] * q
    elif ggml_type in (Q4_0, Q4_1):
        q = values_rng.integers(0, 16, (blocks, 32)).astype(np.uint8)
        packed = (q[:, :16] | (q[:, 16:] << 4)).astype(np.uint8)  # low nibbles: 0..15, high: 16..31
        if ggml_type == Q4_0:
            raw = b"".join(d[i].tobytes() + packed[i].tobytes() for i in range(blocks))
            values = d.astype(np.float32)[:, None] * (q.astype(np.float32) - 8)
        else:
            m = (values_rng.uniform(-8, -6, blocks) * d.astype(np.float32)).astype(np.float16)
            raw = b"".join(d[i].tobytes() + m[i].tobytes() + packed[i].tobytes() for i in range(blocks))
            values = d.astype(np.float32)[:, None] * q + m.astype(np.float32)[:, None]
    else:
        raise ValueError(f"no encoder for type {ggml_type}")
    return raw, values.reshape(shape).astype(np.float32)


# ---------------------------------------------------------------------------------------------
# A trained byte-level BPE vocabulary
# ---------------------------------------------------------------------------------------------

_LLAMA3_REGEX = (r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+"
                 r"|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")


def train_tokenizer(pre: str):
    """A byte-level BPE vocabulary, wrapped in the HF pre-tokenizer that llama.cpp's ``pre`` names.

    The merges are always learnt without digit splitting, so the vocabulary holds multi-digit
    and space+digit tokens: only a converter that reproduces the pre-tokenizer (e.g. SmolLM's
    one-digit-at-a-time split) encodes like the reference.
    """
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

    trainer_tok = Tokenizer(models.BPE())
    trainer_tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=SPECIALS, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    trainer_tok.train_from_iterator(CORPUS, trainer)
    learnt = json.loads(trainer_tok.to_str())["model"]
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in learnt["merges"]]
    # A word no merge sequence reaches: one token only where llama.cpp ignores merges (llama3).
    learnt["vocab"][UNREACHABLE] = len(learnt["vocab"])

    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False)
    if pre == "gpt-2":
        pre_tokenizer = byte_level
    elif pre == "smollm":  # what SmolLM2's own tokenizer.json uses
        pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True), byte_level])
    elif pre == "llama-bpe":
        pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(_LLAMA3_REGEX), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ])
    else:
        raise ValueError(pre)
    tok = Tokenizer(models.BPE(learnt["vocab"], merges, ignore_merges=pre == "llama-bpe"))
    tok.pre_tokenizer = pre_tokenizer
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens(SPECIALS)
    tok.add_tokens([USER_DEFINED])  # a user-defined (non-special) added token
    return tok


def tokenizer_metadata(tok, pre: str) -> dict[str, Any]:
    vocab = tok.get_vocab(with_added_tokens=True)
    tokens = [t for t, _ in sorted(vocab.items(), key=lambda kv: kv[1])]
    assert [vocab[t] for t in tokens] == list(range(len(tokens)))
    merges = json.loads(tok.to_str())["model"]["merges"]
    merges = [m if isinstance(m, str) else " ".join(m) for m in merges]
    types = [3 if t in SPECIALS else 4 if t == USER_DEFINED else 1 for t in tokens]
    return {
        "tokenizer.ggml.model": "gpt2",
        "tokenizer.ggml.pre": pre,
        "tokenizer.ggml.tokens": tokens,
        "tokenizer.ggml.token_type": types,
        "tokenizer.ggml.merges": merges,
        "tokenizer.ggml.bos_token_id": vocab["<|im_start|>"],
        "tokenizer.ggml.eos_token_id": vocab["<|im_end|>"],
        "tokenizer.ggml.padding_token_id": vocab["<|im_end|>"],
        "tokenizer.ggml.unknown_token_id": vocab["<|endoftext|>"],
        "tokenizer.chat_template": CHAT_TEMPLATE,
    }


# ---------------------------------------------------------------------------------------------
# The tiny llama GGUF
# ---------------------------------------------------------------------------------------------


@dataclass
class TinyGGUF:
    path: Path
    config: dict[str, Any]  # mlx-lm llama config the converted model must match
    hf_weights: dict[str, np.ndarray]  # HF layout (q/k un-permuted), float32
    gguf_layout_weights: dict[str, np.ndarray]  # as stored (q/k permuted): a model that skips the fix
    tokenizer: Any  # tokenizers.Tokenizer the vocabulary came from
    metadata: dict[str, Any]


def _reference_unpermute(w: np.ndarray, n_head: int) -> np.ndarray:
    """HF rows from llama.cpp rows, by inverting llama.cpp's forward permutation (mlx_lm's copy)."""
    from mlx_lm.gguf import permute_weights

    forward = permute_weights(np.arange(w.shape[0]), n_head)  # GGUF row i holds HF row forward[i]
    return w[np.argsort(forward)]


def build_tiny_gguf(
    path: Path,
    *,
    types: int | dict[str, int] = F32,
    writer: str = "raw",
    pre: str = "gpt-2",
    tie: bool = True,
    seed: int = 0,
    metadata: dict[str, Any] | None = None,
    drop_metadata: tuple[str, ...] = (),
    extra_tensors: dict[str, tuple[int, tuple[int, ...], bytes]] | None = None,
) -> TinyGGUF:
    """Write a 2-layer llama GGUF; ``types`` is one GGUF type or per-base-name overrides."""
    rng = np.random.default_rng(seed)
    tok = train_tokenizer(pre)
    md: dict[str, Any] = {
        "general.architecture": "llama",
        "general.name": "tiny",
        "llama.context_length": 256,
        "llama.embedding_length": HPARAMS["hidden"],
        "llama.block_count": HPARAMS["layers"],
        "llama.feed_forward_length": HPARAMS["ffn"],
        "llama.attention.head_count": HPARAMS["heads"],
        "llama.attention.head_count_kv": HPARAMS["kv_heads"],
        "llama.rope.dimension_count": HPARAMS["hidden"] // HPARAMS["heads"],
        "llama.rope.freq_base": 10000.0,
        "llama.attention.layer_norm_rms_epsilon": 1e-5,
        **tokenizer_metadata(tok, pre),
        **(metadata or {}),
    }
    for key in drop_metadata:
        md.pop(key)
    vocab = len(md["tokenizer.ggml.tokens"])
    h, f, head_dim = HPARAMS["hidden"], HPARAMS["ffn"], HPARAMS["hidden"] // HPARAMS["heads"]
    shapes: dict[str, tuple[tuple[int, ...], float, str]] = {
        "token_embd": ((vocab, h), 1.0, "model.embed_tokens"),
        "output_norm": ((h,), 0.1, "model.norm"),
    }
    if not tie:
        shapes["output"] = ((vocab, h), 0.3, "lm_head")
    for i in range(HPARAMS["layers"]):
        p = f"model.layers.{i}"
        shapes.update({
            f"blk.{i}.attn_norm": ((h,), 0.1, f"{p}.input_layernorm"),
            f"blk.{i}.attn_q": ((HPARAMS["heads"] * head_dim, h), 0.3, f"{p}.self_attn.q_proj"),
            f"blk.{i}.attn_k": ((HPARAMS["kv_heads"] * head_dim, h), 0.3, f"{p}.self_attn.k_proj"),
            f"blk.{i}.attn_v": ((HPARAMS["kv_heads"] * head_dim, h), 0.3, f"{p}.self_attn.v_proj"),
            f"blk.{i}.attn_output": ((h, h), 0.2, f"{p}.self_attn.o_proj"),
            f"blk.{i}.ffn_norm": ((h,), 0.1, f"{p}.post_attention_layernorm"),
            f"blk.{i}.ffn_gate": ((f, h), 0.2, f"{p}.mlp.gate_proj"),
            f"blk.{i}.ffn_up": ((f, h), 0.2, f"{p}.mlp.up_proj"),
            f"blk.{i}.ffn_down": ((h, f), 0.2, f"{p}.mlp.down_proj"),
        })
    tensors: dict[str, tuple[int, tuple[int, ...], bytes]] = {}
    stored: dict[str, np.ndarray] = {}
    hf: dict[str, np.ndarray] = {}
    for base, (shape, scale, target) in shapes.items():
        ggml_type = types.get(base, F32) if isinstance(types, dict) else types
        if len(shape) == 1:
            ggml_type = F32 if ggml_type not in (F32, F16) else ggml_type  # norms stay float
        raw, values = encode_tensor(rng, ggml_type, shape, scale)
        if len(shape) == 1:  # norm weights near 1
            norm = (values + 1.0).astype(np.float32 if ggml_type == F32 else np.float16)
            raw, values = norm.tobytes(), norm.astype(np.float32)
        tensors[f"{base}.weight"] = (ggml_type, shape, raw)
        stored[f"{target}.weight"] = values
        if base.endswith("attn_q"):
            values = _reference_unpermute(values, HPARAMS["heads"])
        elif base.endswith("attn_k"):
            values = _reference_unpermute(values, HPARAMS["kv_heads"])
        hf[f"{target}.weight"] = values
    tensors.update(extra_tensors or {})

    if writer == "mlx":
        _write_with_mlx(path, md, tensors)
    else:
        write_gguf(path, md, tensors)
    config = {
        "model_type": "llama", "hidden_size": h, "num_hidden_layers": HPARAMS["layers"],
        "intermediate_size": f, "num_attention_heads": HPARAMS["heads"],
        "num_key_value_heads": HPARAMS["kv_heads"], "rms_norm_eps": 1e-5, "vocab_size": vocab,
        "rope_theta": 10000.0, "max_position_embeddings": 256, "tie_word_embeddings": tie,
    }
    return TinyGGUF(path, config, hf, stored, tok, md)


def _write_with_mlx(path: Path, md: dict[str, Any], tensors: dict[str, tuple[int, tuple[int, ...], bytes]]) -> None:
    import mlx.core as mx

    arrays = {}
    for name, (ggml_type, shape, raw) in tensors.items():
        if ggml_type not in (F32, F16):
            raise ValueError("mx.save_gguf writes F32/F16 only")
        arrays[name] = mx.array(np.frombuffer(raw, np.float32 if ggml_type == F32 else np.float16).reshape(shape))

    def mlx_value(v: Any) -> Any:
        if isinstance(v, bool):
            return mx.array(v)
        if isinstance(v, int):
            return mx.array(v, dtype=mx.uint32)
        if isinstance(v, float):
            return mx.array(v, dtype=mx.float32)
        if isinstance(v, list) and v and not isinstance(v[0], str):
            return mx.array(np.asarray(v, np.int32))
        return v

    mx.save_gguf(str(path), arrays, {k: mlx_value(v) for k, v in md.items()})


def reference_logits(config: dict[str, Any], weights: dict[str, np.ndarray], tokens: list[int]) -> np.ndarray:
    """Logits of an mlx-lm llama built directly from HF-layout float32 weights."""
    import mlx.core as mx
    from mlx_lm.models import llama

    model = llama.Model(llama.ModelArgs.from_dict(config))
    model.load_weights([(k, mx.array(v)) for k, v in weights.items()], strict=True)
    return np.array(model(mx.array([tokens])).astype(mx.float32))[0]

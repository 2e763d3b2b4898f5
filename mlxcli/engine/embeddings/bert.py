"""A BERT-family encoder in MLX (BERT, RoBERTa, XLM-RoBERTa, MPNet: MiniLM, BGE, E5, GTE, all-mpnet...).

Parameter names follow Hugging Face's ``BertModel`` so that its safetensors load as they are (MPNet's
are renamed onto them). MPNet adds a relative position bias to every layer's attention scores.
It returns the last hidden states; pooling is the caller's business (model.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import math

import mlx.core as mx
import mlx.nn as nn

from mlxcli.core.errors import ModelError

# model_type → the offset of position ids: RoBERTa's count from padding_idx + 1.
MODEL_TYPES = {"bert": 0, "roberta": None, "xlm-roberta": None, "camembert": None, "mpnet": None}

# erf(x) = x·P(x²)/Q(x²) on [-4, 4] (beyond it erf is ±1 in float32): Eigen's float32 rational
# approximation, within 6e-7 of erf. Only multiplies and adds: MLX's CPU backend computes erf (and
# exp, tanh) one element at a time, which made GELU 80% of an encoder's time; this is 8x faster.
_ERF_P = (-2.72614225801306e-10, 2.77068142495902e-08, -2.10102402082508e-06, -5.69250639462346e-05,
          -7.34990630326855e-04, -2.95459980854025e-03, -1.60960333262415e-02)
_ERF_Q = (-1.45660718464996e-05, -2.13374055278905e-04, -1.68282697438203e-03, -7.37332916720468e-03,
          -1.42647390514189e-02)


def _horner(coefficients: tuple[float, ...], x: mx.array) -> mx.array:
    result = x * coefficients[0] + coefficients[1]
    for c in coefficients[2:]:
        result = result * x + c
    return result


@mx.compile  # one fused pass (a new shape reuses the kernel); shapeless graphs are not fused on the CPU
def gelu(x: mx.array) -> mx.array:
    """The exact (erf) GELU of BERT, to float32 precision."""
    z = mx.clip(x * 0.7071067811865476, -4.0, 4.0)
    z2 = z * z
    return 0.5 * x * (1 + z * _horner(_ERF_P, z2) / _horner(_ERF_Q, z2))


ACTIVATIONS = {"gelu": gelu, "gelu_new": nn.gelu_approx, "gelu_pytorch_tanh": nn.gelu_approx, "relu": nn.relu}
# Prefixes a checkpoint saved from a task model (``BertForMaskedLM``...) puts before the encoder's names.
PREFIXES = ("bert.", "roberta.", "mpnet.", "model.")
# MPNet's names for the parts BERT also has.
MPNET_NAMES = (
    (".attention.attn.q.", ".attention.self.query."),
    (".attention.attn.k.", ".attention.self.key."),
    (".attention.attn.v.", ".attention.self.value."),
    (".attention.attn.o.", ".attention.output.dense."),
    (".attention.LayerNorm.", ".attention.output.LayerNorm."),
)


@dataclass
class BertConfig:
    model_type: str
    vocab_size: int
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    intermediate_size: int
    max_position_embeddings: int
    hidden_act: str = "gelu"
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12
    pad_token_id: int = 0
    relative_attention_num_buckets: int = 32  # MPNet

    @classmethod
    def from_dict(cls, config: dict[str, Any]) -> "BertConfig":
        if config.get("model_type") not in MODEL_TYPES:
            raise ModelError(f"not a BERT-family encoder: model_type {config.get('model_type')!r}")
        if config.get("hidden_act", "gelu") not in ACTIVATIONS:
            raise ModelError(f"unsupported hidden_act {config['hidden_act']!r} (supported: {', '.join(ACTIVATIONS)})")
        if config.get("position_embedding_type", "absolute") != "absolute":
            raise ModelError(f"unsupported position_embedding_type {config['position_embedding_type']!r}")
        fields = {k: config[k] for k in cls.__dataclass_fields__ if config.get(k) is not None}
        if fields["model_type"] == "mpnet":
            fields["type_vocab_size"] = 0  # MPNet has no token types
        return cls(**fields)

    @property
    def relative(self) -> bool:
        """Whether attention scores get a relative position bias (MPNet)."""
        return self.model_type == "mpnet"

    @property
    def position_offset(self) -> int:
        """RoBERTa-style models number positions from ``pad_token_id + 1``."""
        offset = MODEL_TYPES[self.model_type]
        return self.pad_token_id + 1 if offset is None else offset

    @property
    def window(self) -> int:
        """The longest input the position embeddings cover."""
        return self.max_position_embeddings - self.position_offset


class Embeddings(nn.Module):
    def __init__(self, c: BertConfig):
        super().__init__()
        self.offset = c.position_offset
        self.word_embeddings = nn.Embedding(c.vocab_size, c.hidden_size)
        self.position_embeddings = nn.Embedding(c.max_position_embeddings, c.hidden_size)
        if c.type_vocab_size:
            self.token_type_embeddings = nn.Embedding(c.type_vocab_size, c.hidden_size)
        self.LayerNorm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)

    def __call__(self, tokens: mx.array) -> mx.array:
        positions = mx.arange(tokens.shape[1]) + self.offset
        h = self.word_embeddings(tokens) + self.position_embeddings(positions)
        if "token_type_embeddings" in self:
            h = h + self.token_type_embeddings(mx.zeros_like(tokens))  # a single segment: every input is one text
        return self.LayerNorm(h)


class SelfAttention(nn.Module):
    def __init__(self, c: BertConfig):
        super().__init__()
        self.heads = c.num_attention_heads
        self.query = nn.Linear(c.hidden_size, c.hidden_size)
        self.key = nn.Linear(c.hidden_size, c.hidden_size)
        self.value = nn.Linear(c.hidden_size, c.hidden_size)

    def __call__(self, h: mx.array, mask: mx.array) -> mx.array:
        b, n, d = h.shape

        def split(x: mx.array) -> mx.array:
            return x.reshape(b, n, self.heads, d // self.heads).transpose(0, 2, 1, 3)

        q, k, v = split(self.query(h)), split(self.key(h)), split(self.value(h))
        out = mx.fast.scaled_dot_product_attention(q, k, v, scale=(d // self.heads) ** -0.5, mask=mask)
        return out.transpose(0, 2, 1, 3).reshape(b, n, d)


class Output(nn.Module):
    """A projection, then the residual and a LayerNorm (post-norm, as BERT does)."""

    def __init__(self, c: BertConfig, inputs: int):
        super().__init__()
        self.dense = nn.Linear(inputs, c.hidden_size)
        self.LayerNorm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)

    def __call__(self, x: mx.array, residual: mx.array) -> mx.array:
        return self.LayerNorm(self.dense(x) + residual)


class Attention(nn.Module):
    def __init__(self, c: BertConfig):
        super().__init__()
        self.self = SelfAttention(c)  # HF's name for it
        self.output = Output(c, c.hidden_size)

    def __call__(self, h: mx.array, mask: mx.array) -> mx.array:
        return self.output(self["self"](h, mask), h)


class Intermediate(nn.Module):
    def __init__(self, c: BertConfig):
        super().__init__()
        self.dense = nn.Linear(c.hidden_size, c.intermediate_size)
        self.act = ACTIVATIONS[c.hidden_act]

    def __call__(self, h: mx.array) -> mx.array:
        return self.act(self.dense(h))


class Layer(nn.Module):
    def __init__(self, c: BertConfig):
        super().__init__()
        self.attention = Attention(c)
        self.intermediate = Intermediate(c)
        self.output = Output(c, c.intermediate_size)

    def __call__(self, h: mx.array, mask: mx.array) -> mx.array:
        h = self.attention(h, mask)
        return self.output(self.intermediate(h), h)


class Encoder(nn.Module):
    def __init__(self, c: BertConfig):
        super().__init__()
        self.layer = [Layer(c) for _ in range(c.num_hidden_layers)]
        if c.relative:
            self.relative_attention_bias = nn.Embedding(c.relative_attention_num_buckets, c.num_attention_heads)


def relative_position_bucket(relative: mx.array, buckets: int, max_distance: int = 128) -> mx.array:
    """MPNet's (T5's bidirectional) buckets: one per distance up to ``buckets / 4``, then logarithmic."""
    half = buckets // 2
    exact = half // 2
    distance = mx.abs(relative)
    far = exact + (mx.log(mx.maximum(distance, 1) / exact) / math.log(max_distance / exact) * (half - exact)).astype(mx.int32)
    return (relative > 0).astype(mx.int32) * half + mx.where(distance < exact, distance, mx.minimum(far, half - 1))


class BertModel(nn.Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        self.config = config
        self.embeddings = Embeddings(config)
        self.encoder = Encoder(config)

    def __call__(self, tokens: mx.array, lengths: mx.array) -> mx.array:
        """Hidden states ``(batch, length, hidden)`` of right-padded ``tokens``; ``lengths`` per row."""
        n = tokens.shape[1]
        keep = (mx.arange(n)[None, :] < lengths[:, None])[:, None, None, :]  # no row attends to padding
        mask = keep
        if self.config.relative:
            buckets = relative_position_bucket(mx.arange(n)[None, :] - mx.arange(n)[:, None], self.config.relative_attention_num_buckets)
            bias = self.encoder.relative_attention_bias(buckets).transpose(2, 0, 1)[None]  # (1, heads, query, key)
            mask = mx.where(keep, bias, -math.inf)
        h = self.embeddings(tokens)
        for layer in self.encoder.layer:
            h = layer(h, mask)
        return h

    def sanitize(self, weights: dict[str, mx.array]) -> dict[str, mx.array]:
        """The encoder's weights: prefixes of task models stripped; the pooler, heads and buffers dropped."""
        kept = {}
        for name, value in weights.items():
            for prefix in PREFIXES:
                name = name.removeprefix(prefix)
            for theirs, ours in MPNET_NAMES if self.config.model_type == "mpnet" else ():
                name = name.replace(theirs, ours)
            if name.startswith(("embeddings.", "encoder.")) and not name.endswith("position_ids"):
                kept[name] = value
        return kept

"""Whisper in MLX: the audio encoder, the text decoder with cross-attention, and their caches.

Parameter names follow mlx-whisper's (``encoder.blocks.0.attn.query.weight``...), so that the
``mlx-community/whisper-*`` conversions load as they are; our CTranslate2 converter
(models/ctranslate2.py) writes the same names. The encoder runs in bounded pieces (``EncoderPass``):
the convolutions, then per layer its projections and its rows in chunks, so that one pass of the
engine loop does a few tens of milliseconds of it and chat streams keep streaming.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any, Iterator

import mlx.core as mx
import mlx.nn as nn
import numpy as np

from mlxcli.core.errors import ModelError
from mlxcli.engine.embeddings.bert import gelu  # the exact GELU, without MLX's slow element-by-element erf on a CPU

ENCODER_ROWS = 128  # encoder positions per piece (of 1500): their softmax over every key is most of its time


@dataclass(frozen=True)
class WhisperConfig:
    n_mels: int
    n_audio_ctx: int
    n_audio_state: int
    n_audio_head: int
    n_audio_layer: int
    n_vocab: int
    n_text_ctx: int
    n_text_state: int
    n_text_head: int
    n_text_layer: int

    @classmethod
    def from_dict(cls, config: dict[str, Any]) -> "WhisperConfig":
        try:
            return cls(**{f.name: int(config[f.name]) for f in fields(cls)})
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"not an MLX Whisper config.json (n_mels, n_audio_ctx, ... n_text_layer): missing or bad {exc}") from None

    @property
    def multilingual(self) -> bool:
        return self.n_vocab >= 51865


def sinusoids(length: int, channels: int, max_timescale: float = 10000) -> mx.array:
    increment = math.log(max_timescale) / (channels // 2 - 1)
    inv = mx.exp(-increment * mx.arange(channels // 2))
    scaled = mx.arange(length)[:, None] * inv[None, :]
    return mx.concatenate([mx.sin(scaled), mx.cos(scaled)], axis=1)


class MultiHeadAttention(nn.Module):
    def __init__(self, n_state: int, n_head: int):
        super().__init__()
        self.n_head = n_head
        self.query = nn.Linear(n_state, n_state)
        self.key = nn.Linear(n_state, n_state, bias=False)
        self.value = nn.Linear(n_state, n_state)
        self.out = nn.Linear(n_state, n_state)

    def heads(self, x: mx.array, scaled: bool = False) -> mx.array:
        """``(batch, n, state)`` → ``(batch, heads, n, head size)``, laid out so for every query that
        reads it (each decoded token reads the window's cross-attention keys: no copy per token);
        keys ``scaled`` by Whisper's head size ** -0.25 (queries get the same)."""
        b, n, d = x.shape
        x = x.reshape(b, n, self.n_head, d // self.n_head).transpose(0, 2, 1, 3)
        return mx.contiguous(x * (d // self.n_head) ** -0.25 if scaled else x)

    def attend(self, q: mx.array, k: mx.array, v: mx.array, mask: mx.array | None = None) -> tuple[mx.array, mx.array]:
        """The attention output (before ``out``) of queries ``q`` ``(batch, n, state)`` over keys and values
        in ``heads`` layout (keys scaled), and its scores ``(batch, heads, queries, keys)``."""
        b, n, d = q.shape
        q = q.reshape(b, n, self.n_head, -1).transpose(0, 2, 1, 3) * (d // self.n_head) ** -0.25
        qk = q @ k.swapaxes(-1, -2)
        if mask is not None:
            qk = qk + mask
        w = mx.softmax(qk, axis=-1, precise=True)
        return (w @ v).transpose(0, 2, 1, 3).reshape(b, n, d), qk


class ResidualAttentionBlock(nn.Module):
    def __init__(self, n_state: int, n_head: int, cross_attention: bool = False):
        super().__init__()
        self.attn = MultiHeadAttention(n_state, n_head)
        self.attn_ln = nn.LayerNorm(n_state)
        if cross_attention:
            self.cross_attn = MultiHeadAttention(n_state, n_head)
            self.cross_attn_ln = nn.LayerNorm(n_state)
        self.mlp1 = nn.Linear(n_state, n_state * 4)
        self.mlp2 = nn.Linear(n_state * 4, n_state)
        self.mlp_ln = nn.LayerNorm(n_state)

    def mlp(self, x: mx.array) -> mx.array:
        return x + self.mlp2(gelu(self.mlp1(self.mlp_ln(x))))


class AudioEncoder(nn.Module):
    def __init__(self, c: WhisperConfig):
        super().__init__()
        self.conv1 = nn.Conv1d(c.n_mels, c.n_audio_state, kernel_size=3, padding=1)
        self.conv2 = nn.Conv1d(c.n_audio_state, c.n_audio_state, kernel_size=3, stride=2, padding=1)
        self._positional_embedding = sinusoids(c.n_audio_ctx, c.n_audio_state)
        self.blocks = [ResidualAttentionBlock(c.n_audio_state, c.n_audio_head) for _ in range(c.n_audio_layer)]
        self.ln_post = nn.LayerNorm(c.n_audio_state)

    def __call__(self, mel: mx.array) -> mx.array:
        """Audio features of ``mel`` ``(batch, frames, n_mels)`` in one graph (tests, the alignment check)."""
        encoding = EncoderPass(self, mel)
        while not encoding.step():
            pass
        return encoding.features


class EncoderPass:
    """One window's encoding, a bounded piece per ``step``: the convolutions, then for each layer the
    projections of every position and its rows ``ENCODER_ROWS`` at a time, then the final norm.
    Attention by rows is the same arithmetic as all at once: each row attends to every key."""

    def __init__(self, encoder: AudioEncoder, mel: mx.array, rows: int = ENCODER_ROWS):
        self.encoder = encoder
        self.mel = mel
        self.rows = rows
        self.layer = -1  # -1: the convolutions are next
        self.x: mx.array | None = None
        self.kv: tuple[mx.array, mx.array, mx.array] | None = None  # this layer's q, k, v
        self.done_rows: list[mx.array] = []
        self.features: mx.array | None = None

    def step(self) -> bool:
        """One piece, evaluated; True once ``features`` are ready."""
        e = self.encoder
        if self.layer < 0:
            x = gelu(e.conv1(self.mel))
            x = gelu(e.conv2(x))
            if x.shape[1:] != e._positional_embedding.shape:
                raise ValueError(f"a window of {self.mel.shape[1]} mel frames does not fit the encoder")
            self.x = x + e._positional_embedding.astype(x.dtype)
            self.layer = 0
            mx.eval(self.x)
            return False
        if self.layer == len(e.blocks):
            self.features = e.ln_post(self.x)
            mx.eval(self.features)
            return True
        block = e.blocks[self.layer]
        if self.kv is None:
            h = block.attn_ln(self.x)
            attn = block.attn
            self.kv = (attn.query(h), attn.heads(attn.key(h), scaled=True), attn.heads(attn.value(h)))
            mx.eval(*self.kv)
            return False
        q, k, v = self.kv
        start = sum(r.shape[1] for r in self.done_rows)
        end = min(start + self.rows, q.shape[1])
        out, _ = block.attn.attend(q[:, start:end], k, v)
        rows = block.mlp(self.x[:, start:end] + block.attn.out(out))
        mx.eval(rows)
        self.done_rows.append(rows)
        if end == q.shape[1]:
            self.x = mx.concatenate(self.done_rows, axis=1) if len(self.done_rows) > 1 else self.done_rows[0]
            self.done_rows, self.kv = [], None
            self.layer += 1
        return False


class TextDecoder(nn.Module):
    def __init__(self, c: WhisperConfig):
        super().__init__()
        self.token_embedding = nn.Embedding(c.n_vocab, c.n_text_state)
        self.positional_embedding = mx.zeros((c.n_text_ctx, c.n_text_state))
        self.blocks = [ResidualAttentionBlock(c.n_text_state, c.n_text_head, cross_attention=True) for _ in range(c.n_text_layer)]
        self.ln = nn.LayerNorm(c.n_text_state)

    def cross_kv(self, features: mx.array) -> Iterator[tuple[mx.array, mx.array]]:
        """Each layer's keys and values over the audio features (``heads`` layout), evaluated a layer at a
        time (a piece each): once per window."""
        for b in self.blocks:
            kv = (b.cross_attn.heads(b.cross_attn.key(features), scaled=True), b.cross_attn.heads(b.cross_attn.value(features)))
            mx.eval(kv)
            yield kv

    def __call__(
        self,
        tokens: mx.array,
        cross: list[tuple[mx.array, mx.array]],
        cache: list[tuple[mx.array, mx.array]] | None = None,
        with_qk: bool = False,
    ) -> tuple[mx.array, list[tuple[mx.array, mx.array]], list[mx.array]]:
        """The final hidden states of ``tokens`` ``(batch, n)`` read after those in ``cache`` (each layer's
        self-attention keys and values, returned extended), and with ``with_qk`` each layer's
        cross-attention scores. ``logits`` turns the positions wanted into logits."""
        offset = cache[0][0].shape[2] if cache else 0
        n = tokens.shape[-1]
        x = self.token_embedding(tokens) + self.positional_embedding[offset : offset + n]
        mask = None
        if n > 1:
            mask = nn.MultiHeadAttention.create_additive_causal_mask(offset + n)[offset:].astype(x.dtype)
        new_cache, scores = [], []
        for i, block in enumerate(self.blocks):
            h = block.attn_ln(x)
            k, v = block.attn.heads(block.attn.key(h), scaled=True), block.attn.heads(block.attn.value(h))
            if cache:
                k, v = mx.concatenate([cache[i][0], k], axis=2), mx.concatenate([cache[i][1], v], axis=2)
            new_cache.append((k, v))
            out, _ = block.attn.attend(block.attn.query(h), k, v, mask)
            x = x + block.attn.out(out)
            out, qk = block.cross_attn.attend(block.cross_attn.query(block.cross_attn_ln(x)), *cross[i])
            x = x + block.cross_attn.out(out)
            if with_qk:
                scores.append(qk)
            x = block.mlp(x)
        return self.ln(x), new_cache, scores

    def logits(self, hidden: mx.array) -> mx.array:
        """The vocabulary's logits, as float32, from final hidden states (the embedding is the output layer)."""
        return self.token_embedding.as_linear(hidden).astype(mx.float32)


class Whisper(nn.Module):
    def __init__(self, config: WhisperConfig):
        super().__init__()
        self.config = config
        self.encoder = AudioEncoder(config)
        self.decoder = TextDecoder(config)
        # The heads whose cross-attention follows the words in time (word timestamps): the upper half
        # of the decoder's, unless the weights name them (``alignment_heads``: (layer, head) rows).
        layers = np.arange(config.n_text_layer // 2, config.n_text_layer)
        self.alignment_heads = mx.array(np.array([(layer, head) for layer in layers for head in range(config.n_text_head)]))

    def sanitize(self, weights: dict[str, mx.array]) -> dict[str, mx.array]:
        weights = dict(weights)
        weights.pop("encoder._positional_embedding", None)  # computed, never learnt
        if "alignment_heads" in weights:
            self.alignment_heads = weights.pop("alignment_heads").astype(mx.int32)
        return weights


def load_weights(model: Whisper, weights: dict[str, mx.array]) -> None:
    """Set the weights (every parameter must be there), in place."""
    weights = model.sanitize(weights)
    expected = {k for k, _ in nn.utils.tree_flatten(model.parameters())} - {"alignment_heads"}
    missing, extra = sorted(expected - set(weights)), sorted(set(weights) - expected)
    if missing or extra:
        raise ModelError(f"the Whisper weights do not fit the config: missing {missing[:4]}, unexpected {extra[:4]}")
    model.load_weights(list(weights.items()), strict=False)

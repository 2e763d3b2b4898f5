"""A vision model as the continuous batch drives it: tokens and KV caches in, logits out, like an mlx-lm
model, so image requests share the batch with text requests (batch.py, unchanged).

What a vision model needs besides tokens travels with each request's KV cache, in its first layer's
cache (``Row`` while its prompt is read alone, ``Rows`` in the decode batch), never in the model object
(mlx-vlm keeps Qwen2-VL's positions in its language model between steps: one request at a time):

- while a prompt is read, its images: the slice's placeholder tokens get their image's feature rows
  (encoder.py: encoded once per image and kept), the other tokens their embeddings;
- with multimodal RoPE (Qwen2-VL's: an image's tokens are placed by their row and column, so every
  token after an image sits at its index plus an offset, the row's ``delta``), the prompt's positions
  as the model computes them (``get_rope_index``), and afterwards each row's delta: a decode step
  places row b's tokens at its cache offset plus its delta.

Only the architectures in ``FAMILIES`` are read this way (each one's greedy output checked against
mlx-vlm's own generation); the others run one request at a time through mlx-vlm (runner.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import mlx.core as mx
from mlx_lm.models.cache import BatchKVCache, KVCache

from mlxcli.engine.vision.encoder import Encoder
from mlxcli.engine.vision.media import GRID, Media, Picture

MROPE, ROPE = "mrope", "rope"
# mlx-vlm model types whose image features sit one row per placeholder token, read per image, and
# whose language model takes embeddings (and, for multimodal RoPE, positions) in any slice.
FAMILIES = {"qwen2_vl": MROPE, "qwen2_5_vl": MROPE, "llava": ROPE}


def family_of(config: dict[str, Any]) -> str | None:
    return FAMILIES.get(config.get("model_type", ""))


def image_token_of(config: dict[str, Any]) -> int | None:
    for source in (config, config.get("text_config") or {}):
        for key in ("image_token_id", "image_token_index"):
            if isinstance(source.get(key), int):
                return source[key]
    return None


@dataclass
class Prompt:
    """What reading one prompt needs besides its tokens."""

    pictures: list[Picture]  # its images not yet in the cache
    positions: mx.array | None  # multimodal RoPE: every token's (3, 1, n)
    rows: dict[str, mx.array] = field(default_factory=dict)  # its images' feature rows, once read (by digest)

    def rows_of(self, picture: Picture, encoder: Encoder) -> mx.array:
        """``picture``'s feature rows, from the encoder once for all the slices that read it."""
        if picture.digest not in self.rows:
            self.rows[picture.digest] = encoder.rows(picture)
        return self.rows[picture.digest]


class Row(KVCache):
    """The first layer's KV cache of one request: ``prompt`` while its prompt is read, and its ``delta``."""

    def __init__(self, cache: KVCache, prompt: Prompt | None, delta: int):
        super().__init__()
        self.keys, self.values, self.offset = cache.keys, cache.values, cache.offset
        self.prompt = prompt
        self.delta = delta

    @classmethod
    def merge(cls, caches: list["Row"]) -> "Rows":
        return Rows.merge(caches)


class Rows(BatchKVCache):
    """The first layer's KV cache of the decode batch, with each row's ``deltas`` through its changes."""

    deltas: mx.array

    @classmethod
    def merge(cls, caches: list[Row]) -> "Rows":
        merged = super().merge(caches)
        if not isinstance(merged, Rows):  # mlx-lm's merge of empty caches makes a plain BatchKVCache
            merged = Rows([0] * len(caches))
        merged.deltas = mx.array([c.delta for c in caches], dtype=mx.int32)
        return merged

    def extend(self, other: "Rows") -> None:
        super().extend(other)
        self.deltas = mx.concatenate([self.deltas, other.deltas])

    def filter(self, batch_indices) -> None:
        super().filter(batch_indices)
        self.deltas = self.deltas[mx.array(batch_indices, dtype=mx.int32)]


class VisionLanguage:
    """mlx-vlm's model (``vlm``) behind the interface of an mlx-lm language model."""

    def __init__(self, vlm: Any, family: str, encoder: Encoder):
        self.vlm = vlm
        self.family = family
        self.encoder = encoder
        self.language = vlm.language_model

    @property
    def layers(self):
        return self.vlm.layers

    def prepare(self, cache: list, tokens: list[int], media: Media | None) -> None:
        """Make ``cache`` (holding the first ``cache[0].offset`` of ``tokens``) read the rest of this prompt."""
        read = cache[0].offset
        pictures = [p for p in media.pictures if p.end > read] if media is not None else []
        positions, delta = None, 0
        if media is not None and self.family == MROPE:
            grid = media.inputs.get(GRID)
            positions, deltas = self.language.get_rope_index(mx.array([tokens]), None if grid is None else mx.array(grid), None, None)
            delta = int(deltas.reshape(-1)[0].item())
        cache[0] = Row(cache[0], Prompt(pictures, positions) if pictures or positions is not None else None, delta)

    def __call__(self, inputs: mx.array, cache: list | None = None, **_) -> mx.array:
        first = cache[0] if cache else None
        prompt = first.prompt if isinstance(first, Row) else None
        embeddings = self._embeddings(inputs, first.offset, prompt) if prompt is not None and prompt.pictures else None
        if self.family != MROPE:
            return self.language(inputs, inputs_embeds=embeddings, cache=cache).logits
        return self.language(inputs, inputs_embeds=embeddings, cache=cache, position_ids=self._positions(inputs, first)).logits

    def _embeddings(self, inputs: mx.array, start: int, prompt: Prompt) -> mx.array | None:
        """The slice's embeddings, its images' feature rows in place of their placeholders (None: no image)."""
        n = inputs.shape[1]
        parts, at = [], start
        text = None
        for p in prompt.pictures:
            lo, hi = max(p.start, start), min(p.end, start + n)
            if lo >= hi:
                continue
            text = self.language.model.embed_tokens(inputs) if text is None else text
            if lo > at:
                parts.append(text[:, at - start : lo - start])
            parts.append(prompt.rows_of(p, self.encoder)[None, lo - p.start : hi - p.start].astype(text.dtype))
            at = hi
        if text is None:
            return None
        if at < start + n:
            parts.append(text[:, at - start :])
        return mx.concatenate(parts, axis=1)

    def _positions(self, inputs: mx.array, first: Any) -> mx.array:
        """Each token's (3, batch, n) multimodal positions: the prompt's own while it is read, else (text
        after every image) each row's cache offset plus its delta."""
        n = inputs.shape[1]
        if isinstance(first, Row):
            if first.prompt is not None and first.prompt.positions is not None and first.offset + n <= first.prompt.positions.shape[-1]:
                return first.prompt.positions[..., first.offset : first.offset + n]
            start = mx.array([[first.offset + first.delta]])
        elif isinstance(first, Rows):
            start = (first.offset + first.deltas)[:, None]
        else:  # a cache that did not come through prepare: its rows' positions are unknown
            raise TypeError(f"a multimodal-RoPE model's rows need their positions, not a {type(first).__name__}")
        positions = start + mx.arange(n)[None]
        return mx.broadcast_to(positions[None], (3, *positions.shape))

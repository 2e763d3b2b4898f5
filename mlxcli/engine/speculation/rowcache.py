"""The decode batch's KV cache when it speculates: mlx-lm's ``BatchKVCache`` whose rows can each drop
their own last positions (the proposals a row rejected), by its own amount.

``BatchKVCache`` writes every row at one shared index, so a trim rewinds every row alike. Here a row
that must drop more than the others leaves holes: the positions are masked out of attention from then
on (``live``), and the row's offset (its RoPE position) goes back by as many, so its next token sits
right after its last kept one. Nothing is copied (ARCHITECTURE.md, "Speculation", weighs the other
ways: trimming every row to the least accepted and re-feeding, compacting the cache). A hole costs
what a row's left padding costs (the batch is as wide as its longest row), and a row extracted for
the prompt cache keeps only its live positions.
"""

from __future__ import annotations

import mlx.core as mx
import numpy as np
from mlx_lm.models.cache import BatchKVCache, KVCache


class RowKVCache(BatchKVCache):
    def __init__(self, left_padding: list[int]):
        super().__init__(left_padding)
        self.live: mx.array | None = None  # [rows, written] bool, False at a hole; None: no hole

    @classmethod
    def merge(cls, caches):
        merged = super().merge(caches)
        return merged if type(merged) is cls else cls([0] * len(caches))  # mlx-lm's merge of empty caches

    def update_and_fetch(self, keys, values):
        if self.live is not None:
            self.live = mx.concatenate([self.live, mx.ones((self.live.shape[0], keys.shape[2]), dtype=mx.bool_)], axis=1)
        return super().update_and_fetch(keys, values)

    def make_mask(self, N: int, return_array: bool = False, **kwargs):
        mask = super().make_mask(N, return_array=return_array, **kwargs)
        if self.live is None:
            return mask
        ahead = mx.ones((self.live.shape[0], N), dtype=mx.bool_)
        return mask & mx.concatenate([self.live, ahead], axis=1)[:, None, None, :]

    def trim(self, n):
        n = super().trim(n)
        if self.live is not None:
            self.live = self.live[:, : self._idx]
        return n

    def drop(self, counts: list[int]) -> None:
        """Row ``i`` forgets its last ``counts[i]`` positions."""
        common = min(counts)
        if common:
            self.trim(common)
        extra = [c - common for c in counts]
        if not any(extra):
            return
        extra_ = mx.array(extra)
        dead = mx.arange(self._idx)[None, :] >= (self._idx - extra_)[:, None]
        self.live = ~dead if self.live is None else self.live & ~dead
        self.offset = self.offset - extra_

    def filter(self, batch_indices):
        live = self.live[batch_indices] if self.live is not None else None
        before = self._idx
        super().filter(batch_indices)
        if live is not None:
            self.live = live[:, before - self._idx :]  # the parent drops columns that every row pads

    def extend(self, other):
        lives = [c.live if getattr(c, "live", None) is not None else None for c in (self, other)]
        if all(live is None for live in lives):
            return super().extend(other)
        width = max(self._idx, other._idx)
        padded = []
        for c, live in zip((self, other), lives):
            rows = c.offset.shape[0]
            live = mx.ones((rows, c._idx), dtype=mx.bool_) if live is None else live
            padded.append(mx.concatenate([mx.ones((rows, width - c._idx), dtype=mx.bool_), live], axis=1))
        super().extend(other)
        self.live = mx.concatenate(padded, axis=0)

    def extract(self, idx):
        if self.live is None:
            return super().extract(idx)
        mx.eval(self.left_padding, self.live)
        padding = self.left_padding.tolist()[idx]
        kept = mx.array(padding + np.flatnonzero(np.array(self.live[idx, padding : self._idx])))
        cache = KVCache()
        cache.keys = mx.contiguous(self.keys[idx : idx + 1, :, kept])
        cache.values = mx.contiguous(self.values[idx : idx + 1, :, kept])
        cache.offset = cache.keys.shape[2]
        return cache



def merge(caches: list[list]) -> list[RowKVCache]:
    """One ``RowKVCache`` per layer for the rows ``caches`` (each a model's list of per-layer caches)."""
    return [RowKVCache.merge([c[i] for c in caches]) for i in range(len(caches[0]))]

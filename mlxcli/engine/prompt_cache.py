"""Reuse the KV cache of the longest matching token prefix across requests.

A thin layer over mlx-lm's ``LRUPromptCache`` (a token trie with LRU eviction):
it fixes the budget in bytes and entries, keys entries by the served model, and
always leaves at least one prompt token to compute (the model must produce the
logits that sample the first new token). Called on the engine thread only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mlx_lm.models.cache import LRUPromptCache, can_trim_prompt_cache, trim_prompt_cache


@dataclass
class Reuse:
    """What a request can start from: ``cache`` (None: a fresh one) already holds ``cached`` tokens."""

    cache: list[Any] | None
    cached: int
    rest: list[int]  # the prompt tokens still to compute; never empty


class PromptCache:
    def __init__(self, max_bytes: int, max_entries: int):
        self.max_bytes = max_bytes
        self.max_entries = max_entries
        self._lru = LRUPromptCache(max_size=max_entries, max_bytes=max_bytes)

    @property
    def enabled(self) -> bool:
        return self.max_bytes > 0 and self.max_entries > 0

    @property
    def nbytes(self) -> int:
        return self._lru.nbytes

    def __len__(self) -> int:
        return len(self._lru)

    def fetch(self, model: str, tokens: list[int]) -> Reuse:
        """A copy of the cache of the longest prefix of ``tokens`` stored for ``model``."""
        if not self.enabled or len(tokens) < 2:
            return Reuse(None, 0, tokens)
        cache, rest = self._lru.fetch_nearest_cache(model, tokens)
        if cache is None:
            return Reuse(None, 0, tokens)
        if not rest:  # the whole prompt is cached: recompute its last token for the logits
            if not can_trim_prompt_cache(cache):
                return Reuse(None, 0, tokens)
            trim_prompt_cache(cache, 1)
            rest = tokens[-1:]
        return Reuse(cache, len(tokens) - len(rest), list(rest))

    def store(self, model: str, tokens: list[int], cache: list[Any]) -> None:
        """Keep ``cache``, which holds exactly ``tokens``; evicts the least recently used beyond budget."""
        if self.enabled and tokens:
            self._lru.insert_cache(model, list(tokens), cache)

    def clear(self) -> None:
        self._lru.trim_to(n_sequences=0)

"""Reuse the KV cache of the longest matching token prefix across requests.

Two tiers. In memory: mlx-lm's ``LRUPromptCache`` (a token trie with LRU eviction), with its
budget in bytes and entries. On disk (disk_cache.py, optional): what memory evicts, and every
entry when the engine stops or unloads a model, so a restart or a model swap starts warm. A
lookup takes the longest usable prefix from either tier (a disk hit moves into memory).

Entries are keyed by the model's identity (runner.cache_key: its files, template, dtype and KV
format), and a lookup always leaves at least one prompt token to compute (the model must produce
the logits that sample the first new token). Called on the engine thread only (``stats`` from any).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from mlx_lm.models.cache import LRUPromptCache, can_trim_prompt_cache, trim_prompt_cache

from mlxcli.core.errors import MlxcliError
from mlxcli.engine.disk_cache import DiskCache

if TYPE_CHECKING:
    from mlxcli.engine.settings import EngineSettings

log = logging.getLogger("mlxcli.engine")

# Entry kinds, in mlx-lm's eviction order: final entries go before message-boundary checkpoints.
FINAL, CHECKPOINT = "assistant", "user"


@dataclass
class Reuse:
    """What a request can start from: ``cache`` (None: a fresh one) already holds ``cached`` tokens."""

    cache: list[Any] | None
    cached: int
    rest: list[int]  # the prompt tokens still to compute; never empty


class _Order(LRUPromptCache.CacheOrder):
    """mlx-lm's eviction order, reporting each entry it evicts (``pop`` is called only to evict)."""

    def __init__(self, evicted: Callable[[tuple[Any, list[int]]], None]):
        super().__init__()
        self._evicted = evicted

    def pop(self):
        key = super().pop()
        self._evicted(key)
        return key


class _Memory(LRUPromptCache):
    """``LRUPromptCache`` that hands what it evicts to ``on_evict(model, tokens, cache)`` before dropping it."""

    def __init__(self, max_size: int, max_bytes: int, on_evict: Callable[[Any, list[int], list[Any]], None]):
        super().__init__(max_size=max_size, max_bytes=max_bytes)
        self._lru = _Order(lambda key: on_evict(*key, self._trie.get(*key).prompt_cache))


class PromptCache:
    def __init__(self, max_bytes: int, max_entries: int, disk: DiskCache | None = None):
        self.max_bytes = max_bytes
        self.max_entries = max_entries
        self.disk = disk
        self._lru = _Memory(max_entries, max_bytes, self._evicted)

    @classmethod
    def from_settings(cls, settings: "EngineSettings") -> "PromptCache":
        directory, disk = settings.prompt_cache_dir, None
        if directory and settings.prompt_cache_disk_bytes > 0:
            try:
                disk = DiskCache(Path(directory), settings.prompt_cache_disk_bytes)
            except OSError as exc:
                raise MlxcliError(f"cannot use the prompt cache directory {directory}: {exc.strerror or exc}") from exc
        return cls(settings.prompt_cache_bytes, settings.prompt_cache_entries, disk)

    @property
    def enabled(self) -> bool:
        return self.max_bytes > 0 and self.max_entries > 0

    @property
    def nbytes(self) -> int:
        return self._lru.nbytes

    def __len__(self) -> int:
        return len(self._lru)

    def fetch(self, model: str, tokens: list[int]) -> Reuse:
        """A copy of the cache of the longest prefix of ``tokens`` stored for ``model``, in memory or on disk."""
        if not self.enabled or len(tokens) < 2:
            return Reuse(None, 0, tokens)
        cache, rest = self._nearest(model, tokens)
        cached = len(tokens) - len(rest) if cache is not None else 0
        if self.disk is not None:
            name, supplies = self.disk.best(model, tokens)
            if supplies > cached and (loaded := self.disk.load(model, name)) is not None:
                self._lru.insert_cache(model, loaded[1], loaded[0], cache_type=FINAL)
                cache, rest = self._nearest(model, tokens)
                cached = len(tokens) - len(rest) if cache is not None else 0
        if cache is None:
            return Reuse(None, 0, tokens)
        return Reuse(cache, cached, list(rest))

    def _nearest(self, model: str, tokens: list[int]) -> tuple[list[Any] | None, list[int]]:
        cache, rest = self._lru.fetch_nearest_cache(model, tokens)
        if cache is not None and not rest:  # the whole prompt is cached: recompute its last token for the logits
            if can_trim_prompt_cache(cache):
                trim_prompt_cache(cache, 1)
                return cache, tokens[-1:]
            # A cache that cannot be trimmed: the longest entry short of the whole prompt (a checkpoint).
            cache, rest = self._lru.fetch_nearest_cache(model, tokens[:-1])
            return cache, list(rest) + tokens[-1:]
        return cache, rest

    def store(self, model: str, tokens: list[int], cache: list[Any], kind: str = FINAL) -> None:
        """Keep ``cache``, which holds exactly ``tokens``; evicts the least recently used beyond budget."""
        if self.enabled and tokens:
            self._lru.insert_cache(model, list(tokens), cache, cache_type=kind)

    def clear(self) -> None:
        """Empty the memory tier; its entries go to the disk tier, if there is one."""
        if self.disk is None:
            return self._lru.trim_to(n_sequences=0)
        s = self.disk.stats
        writes, written, seconds = s.writes, s.bytes_written, s.write_seconds
        self._lru.trim_to(n_sequences=0)
        if s.writes > writes:
            log.info(
                "prompt cache: wrote %d entries (%.1f MB) to %s in %.2f s",
                s.writes - writes, (s.bytes_written - written) / 1e6, self.disk.directory, s.write_seconds - seconds,
            )

    def _evicted(self, model: str, tokens: list[int], cache: list[Any]) -> None:
        if self.disk is not None:
            self.disk.save(model, tokens, cache)

    def stats(self) -> dict[str, Any]:
        """For /health and `mlxcli ps` (any thread: counters and a directory listing)."""
        checkpoints = self._lru.stats_by_type()[CHECKPOINT]
        out: dict[str, Any] = {
            "entries": len(self),
            "bytes": self.nbytes,
            "checkpoints": checkpoints["n_sequences"],  # message-boundary checkpoints among the entries
            "checkpoint_bytes": checkpoints["n_bytes"],
        }
        if self.disk is not None:
            entries, size = self.disk.usage()
            s = self.disk.stats
            out["disk"] = {
                "dir": str(self.disk.directory),
                "entries": entries,
                "bytes": size,
                "max_bytes": self.disk.max_bytes,
                "hits": s.hits,
                "writes": s.writes,
                "removed": s.removed,
                "read_mb_per_s": _rate(s.bytes_read, s.read_seconds),
                "write_mb_per_s": _rate(s.bytes_written, s.write_seconds),
            }
        return out


def _rate(n: int, seconds: float) -> float | None:
    return round(n / seconds / 1e6, 1) if seconds > 0 else None

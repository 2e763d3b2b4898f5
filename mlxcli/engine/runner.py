"""What the engine's scheduler drives: the jobs of one model that generate now.

Two kinds, one surface: ``Batch`` (batch.py: continuous batching) and ``Solo`` (solo.py: one job,
for what cannot batch). Both take a job's longest cached prefix from the prompt cache, feed its
tokens to a ``Sequence`` (decoding.py) one step at a time, and leave its KV cache there at the end.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import mlx.core as mx
from mlx_lm.models.cache import ConcatenateKVCache, KVCache, QuantizedKVCache, make_prompt_cache

from mlxcli.engine.decoding import Sequence
from mlxcli.engine.prompt_cache import CHECKPOINT, PromptCache
from mlxcli.engine.sampling import Samplers

if TYPE_CHECKING:
    from mlxcli.engine.job import Job
    from mlxcli.engine.loading import LoadedModel
    from mlxcli.engine.served import ServedModel
    from mlxcli.engine.settings import EngineSettings


class Runner:
    """Lives on the engine thread."""

    def __init__(
        self,
        served: "ServedModel",
        model: "LoadedModel",
        settings: "EngineSettings",
        prompt_cache: PromptCache,
        stream: mx.Stream,
    ):
        self.served = served
        self.model = model
        self._settings = settings
        self._prompt_cache = prompt_cache
        self._stream = stream
        self._samplers = Samplers(model, served.stop_tokens)
        self._cache_key = cache_key(served, model, settings)
        # Caches that can be trimmed serve every prefix of a stored entry; others only the stored
        # prefixes themselves, so their prompts are read in segments and the KV at each boundary is kept.
        self.checkpoints = served.checkpoints = self._prompt_cache.enabled and not always_trimmable(make_prompt_cache(model.model))

    @property
    def jobs(self) -> list["Job"]:
        raise NotImplementedError

    def __len__(self) -> int:
        return len(self.jobs)

    def has_room(self) -> bool:
        """Whether another job of the same model may join now."""
        raise NotImplementedError

    def join(self, job: "Job") -> None:
        raise NotImplementedError

    def step(self) -> int:
        """One token for every job (or the next prompt chunk); ends the jobs that finish. Returns the
        prompt tokens it read."""
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def _checkpoint(self, tokens: list[int], cache: list) -> None:
        self._prompt_cache.store(self._cache_key, tokens, cache, CHECKPOINT)

    def _new_sequence(self, job: "Job", cached_tokens: int, *, started: bool = False) -> Sequence:
        """The job's output side; ``started``: its prompt starts being read now (else when the runner says)."""
        job.cached_tokens = cached_tokens
        sequence = Sequence(job, self.model.tokenizer, self._settings.reasoning, caches=self._prompt_cache.enabled)
        sequence.started = time.perf_counter() if started else None
        return sequence


def cache_key(served: "ServedModel", model: "LoadedModel", settings: "EngineSettings") -> str:
    """Which stored KV caches this runner can use: the model's files and template, what its weights run
    as (the CPU fast path runs them as float32), and the KV format (``--kv-bits``)."""
    return f"{served.identity or served.name}|{model.dtype}|kv={settings.kv_bits}"


def always_trimmable(cache: list) -> bool:
    """Whether a model's caches can always be trimmed (a sliding window's, once full, cannot)."""
    return all(type(c) in (KVCache, QuantizedKVCache, ConcatenateKVCache) for c in cache)


def segments(tokens: list[int], cached: int, boundaries: list[int]) -> list[list[int]]:
    """The prompt tokens after ``cached``, cut at the boundaries beyond it."""
    cuts = [cached] + [b for b in boundaries if b > cached] + [len(tokens)]
    return [tokens[a:b] for a, b in zip(cuts, cuts[1:])]

"""Continuous batching of one model's requests on mlx-lm's ``BatchGenerator``.

Requests join and leave between decode steps. Each step decodes one token for
every running request and computes one chunk (``prefill_step_size`` tokens) of
the prompts being read, so a long new prompt never stalls the answers already
streaming. Each request keeps its own sampler, logits processors, ``max_tokens``,
stop strings and cancellation; end-of-sequence tokens stop a request inside the
generator. A request starts from the prompt cache's longest matching prefix, and
leaves its own KV cache there when it ends (and, for caches that cannot be trimmed,
the KV at its message boundaries as the prompt is read: its segments).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import mlx.core as mx
from mlx_lm.generate import BatchGenerator
from mlx_lm.models.cache import make_prompt_cache

from mlxcli.core.errors import EngineFailure
from mlxcli.engine.decoding import Sequence
from mlxcli.engine.group import collective_failed
from mlxcli.engine.prompt_cache import PromptCache
from mlxcli.engine.runner import Runner, segments

if TYPE_CHECKING:
    from mlxcli.engine.job import Job
    from mlxcli.engine.loading import LoadedModel
    from mlxcli.engine.served import ServedModel
    from mlxcli.engine.settings import EngineSettings

log = logging.getLogger("mlxcli.engine")

PREFILL_BATCH = 8  # prompts read together at most (mlx-lm's default)


def can_batch(model: "LoadedModel") -> bool:
    """Whether the model's caches can be merged into a batch (mlx-lm's own test)."""
    return all(hasattr(c, "merge") for c in make_prompt_cache(model.model))


class Batch(Runner):
    """The running batch of one model."""

    def __init__(self, served: "ServedModel", model: "LoadedModel", settings: "EngineSettings", prompt_cache: PromptCache, stream: mx.Stream):
        super().__init__(served, model, settings, prompt_cache, stream)
        self._generator = BatchGenerator(
            model.model,
            stop_tokens=[[t] for t in served.stop_tokens],
            completion_batch_size=settings.max_batch,
            prefill_batch_size=min(settings.max_batch, PREFILL_BATCH),
            prefill_step_size=settings.prefill_step_size,
            stream=stream,
        )
        self._members: dict[int, Sequence] = {}

    @property
    def jobs(self) -> list["Job"]:
        return [m.job for m in self._members.values()]

    def has_room(self) -> bool:
        return len(self._members) < self._settings.max_batch

    def join(self, job: "Job") -> None:
        tokens = job.prompt.tokens
        reuse = self._prompt_cache.fetch(self._cache_key, tokens)
        (uid,) = self._generator.insert_segments(
            [segments(tokens, reuse.cached, job.prompt.boundaries if self.checkpoints else [])],
            max_tokens=[job.max_tokens],
            caches=[reuse.cache],
            all_tokens=[tokens[: reuse.cached]],
            samplers=[self._samplers.sampler(job)],
            logits_processors=[self._samplers.processors(job)],
        )
        self._members[uid] = self._new_sequence(job, reuse.cached)

    def step(self) -> None:
        """Drop cancelled requests, then one decode step (and one prefill chunk)."""
        cancelled = [uid for uid, m in self._members.items() if m.job.cancelled.is_set()]
        if cancelled:
            self._generator.remove(cancelled)
            for uid in cancelled:
                self._members.pop(uid).finish("cancelled")
        if not self._members:
            return
        try:
            read, responses = self._generator.next()
        except Exception as exc:  # a failed forward pass fails the batch, not the engine
            if self._settings.distributed and collective_failed(exc):  # ...unless a rank is gone: the group is
                raise  # broken, and the next collective might never return
            log.exception("batched generation failed")
            self._fail(EngineFailure(f"generation failed: {type(exc).__name__}: {exc}"))
            return
        self._keep_checkpoints(read)
        stopped = []
        for r in responses:
            hit_stop_string = self._members[r.uid].add(r.token, r.finish_reason, r.logprobs)
            if r.finish_reason is not None:
                self._prompt_cache.store(self._cache_key, r.all_tokens, r.prompt_cache)
                self._members.pop(r.uid).finish(r.finish_reason)
            elif hit_stop_string:
                stopped.append(r.uid)
        if stopped:
            caches = self._generator.remove(stopped, return_prompt_caches=True)
            for uid in stopped:
                cache, tokens = caches[uid]
                self._prompt_cache.store(self._cache_key, tokens, cache)
                self._members.pop(uid).finish("stop")

    def _keep_checkpoints(self, read: list) -> None:
        """The KV of each prompt that has just been read up to one of its message boundaries."""
        marks = [r.uid for r in read if r.end_of_segment and not r.end_of_prompt and r.uid in self._members]
        if not (self.checkpoints and marks):
            return
        for uid, (cache, tokens) in self._generator.extract_cache(marks).items():
            if len(tokens) in self._members[uid].job.prompt.boundaries:  # not the split before the last token
                self._checkpoint(list(tokens), cache)

    def _fail(self, error: Exception) -> None:
        """End every request in the batch with ``error`` (the engine then drops the batch)."""
        for member in self._members.values():
            member.job.emit(error)
        self._members.clear()

    def close(self) -> None:
        self._generator.close()

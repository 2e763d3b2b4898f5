"""Continuous batching of one model's requests: our own step over mlx-lm's models and caches, under the
scheduling policy of schedule.py.

A request joins as a ``Reading``: its prompt (after the prompt cache's longest matching prefix) is
read alone into a cache of its own, a slice per step, shortest remaining first; a short prompt is
never padded to a long one's length. Once all but its last token are read it moves into the decode
batch (decode.py: one forward pass reads the last tokens of the prompts that join and samples their
first answer tokens). Each step, in order:

1. the prompts read to their end move into the decode batch (a fully cached prompt does so in the
   first step after it arrives: its first token is never held behind anybody's prompt);
2. one decode step: a token for every running request (each with its own sampler, logits processors,
   ``max_tokens`` and end-of-sequence tokens), or, for a model that speculates, a verification of
   each row's own proposals: several tokens per request (speculation/);
3. the prompt slices the policy grants, given the decode step's measured time.

Requests leave between steps (cancellation, stop strings, the end of their answer), each leaving its
KV cache in the prompt cache; a cache that cannot be trimmed also keeps the KV at each message
boundary of its prompt as it is read (its checkpoints).
"""

from __future__ import annotations

import copy
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import mlx.core as mx
from mlx_lm.models.cache import make_prompt_cache

from mlxcli.core.errors import EngineFailure
from mlxcli.engine.decode import DecodeBatch, Output, Row
from mlxcli.engine.decoding import Sequence
from mlxcli.engine.group import collective_failed
from mlxcli.engine.prompt_cache import PromptCache
from mlxcli.engine.runner import Runner
from mlxcli.engine.schedule import Policy
from mlxcli.engine.speculation.draft import Draft
from mlxcli.engine.speculation.speculator import Speculator

if TYPE_CHECKING:
    from mlxcli.engine.job import Job
    from mlxcli.engine.loading import LoadedModel
    from mlxcli.engine.served import ServedModel
    from mlxcli.engine.settings import EngineSettings

log = logging.getLogger("mlxcli.engine")


def can_batch(model: "LoadedModel") -> bool:
    """Whether the model's caches can be merged into a batch (mlx-lm's own test)."""
    return all(hasattr(c, "merge") for c in make_prompt_cache(model.model))


@dataclass(eq=False)
class Reading:
    """A prompt being read into its own cache."""

    sequence: Sequence
    cache: list
    tokens: list[int]  # the whole prompt
    read: int  # tokens the cache holds
    checkpoints: list[int]  # message boundaries ahead, where the KV is kept (caches that cannot be trimmed)
    waited: int = 0  # steps since its last slice
    seconds_per_token: float | None = None  # measured on its slices so far

    @property
    def remaining(self) -> int:
        return len(self.tokens) - 1 - self.read


CLEAR_CACHE_STEPS = 512  # decode steps between two returns of MLX's freed buffers


class Batch(Runner):
    """The running batch of one model."""

    def __init__(self, served: "ServedModel", model: "LoadedModel", settings: "EngineSettings", prompt_cache: PromptCache, stream: mx.Stream):
        super().__init__(served, model, settings, prompt_cache, stream)
        self.policy = Policy(
            prefill_ratio=settings.prefill_ratio,
            young_ratio=settings.young_ratio,
            young_tokens=settings.young_tokens,
            max_step_seconds=settings.max_step_seconds,
            max_chunk=settings.prefill_step_size,
            fixed=settings.distributed is not None,  # every rank must take the same decisions: none from a clock
        )
        self._decoding = DecodeBatch(model.model, served.stop_tokens, self._speculator())
        self._members: dict[int, Sequence] = {}  # decoding, by uid
        self._reading: list[Reading] = []
        self._uids = 0
        self._decode_steps = 0

    def _speculator(self) -> Speculator | None:
        """What the decode batch speculates with, if its model does (speculation/setup.py checked it at load)."""
        wanted = self.model.speculation
        if wanted is None:
            return None
        self.served.speculation.mode = wanted.mode
        draft = Draft(self.model.draft.model) if self.model.draft is not None else None
        return Speculator(self.served.speculation, lookup=wanted.lookup, draft=draft, max_depth=wanted.depth)

    @property
    def jobs(self) -> list["Job"]:
        return [m.job for m in self._members.values()] + [r.sequence.job for r in self._reading]

    def has_room(self) -> bool:
        return len(self._members) + len(self._reading) < self._settings.max_batch

    def join(self, job: "Job") -> None:
        tokens = job.prompt.tokens
        reuse = self._prompt_cache.fetch(self._cache_key, job.prompt.cache_tokens(tokens))
        cache = reuse.cache if reuse.cache is not None else make_prompt_cache(self.model.model)
        boundaries = job.prompt.boundaries if self.checkpoints else []
        ahead = [b for b in boundaries if reuse.cached < b <= len(tokens) - 1]
        sequence = self._new_sequence(job, reuse.cached)
        self._reading.append(Reading(sequence, cache, list(tokens), reuse.cached, ahead))

    def step(self) -> int:
        """Drop cancelled requests; start the prompts read to their end; one decode step; the prompt slices."""
        self._drop_cancelled()
        if not self._members and not self._reading:
            return 0
        started = time.perf_counter()
        try:
            self._start_ready()
            decoded = time.perf_counter()
            if self._members:
                responses = self._decoding.step()
                decoded = time.perf_counter()
                self.policy.observe_decode(decoded - started)
                self._answer(responses)
                self._decode_steps += 1
            read = self._read_slices()
            if read or (self._members and self._decode_steps % CLEAR_CACHE_STEPS == 0):
                # MLX keeps freed buffers for reuse; without this the process grows with every new shape it
                # has seen (mlx-lm's BatchGenerator clears at the same points: after prompt reading, every 512 steps)
                mx.clear_cache()
            return read
        except Exception as exc:  # a failed forward pass fails the batch, not the engine
            if self._settings.distributed and collective_failed(exc):  # ...unless a rank is gone: the group is
                raise  # broken, and the next collective might never return
            log.exception("batched generation failed")
            self._fail(EngineFailure(f"generation failed: {type(exc).__name__}: {exc}"))
            return 0

    # ---- the three parts of a step -----------------------------------------

    def _start_ready(self) -> None:
        """The prompts read to their last token join the decode batch: one forward pass for all of them
        reads their last tokens and samples their first answer tokens."""
        ready = [r for r in self._reading if r.remaining <= 0]
        if not ready:
            return
        uids = list(range(self._uids, self._uids + len(ready)))
        self._uids += len(ready)
        for r in ready:
            if r.sequence.started is None:  # a fully cached prompt: nothing to read
                r.sequence.started = time.perf_counter()
        rows = [
            Row(
                uid,
                list(r.tokens),
                self._samplers.sampler(r.sequence.job),
                tuple(self._samplers.processors(r.sequence.job)),
                r.sequence.job.max_tokens,
                r.sequence.job.request.speculate,
            )
            for uid, r in zip(uids, ready)
        ]
        with mx.stream(self._stream):
            self._decoding.add(rows, [r.cache for r in ready])
        self._reading = [r for r in self._reading if r.remaining > 0]  # only now: a failure above fails them too
        for uid, r in zip(uids, ready):
            self._members[uid] = r.sequence

    def _answer(self, outputs: list[Output]) -> None:
        """Each row's tokens to its request (a speculating step hands out several); the ended ones leave,
        their KV cache kept."""
        stopped = []  # (uid, tokens it handed out after its stop string)
        for out in outputs:
            sequence = self._members[out.uid]
            for j, (token, logprobs) in enumerate(zip(out.tokens, out.logprobs)):
                last = j == len(out.tokens) - 1
                if sequence.add(token, out.finish_reason if last else None, logprobs):
                    if out.finish_reason is None:
                        stopped.append((out.uid, len(out.tokens) - 1 - j))
                    break
            if out.finish_reason is not None:
                self._prompt_cache.store(self._cache_key, sequence.job.prompt.cache_tokens(out.all_tokens), out.prompt_cache)
                self._members.pop(out.uid).finish(out.finish_reason)
        if stopped:
            rows = {uid: i for i, uid in enumerate(self._decoding.uids)}
            for uid, unused in stopped:
                tokens, cache = self._decoding.extract(rows[uid], unused)
                self._prompt_cache.store(self._cache_key, self._members[uid].job.prompt.cache_tokens(tokens), cache)
            self._remove([uid for uid, _ in stopped])
            for uid, _ in stopped:
                self._members.pop(uid).finish("stop")

    def _read_slices(self) -> int:
        """The prompt slices the policy grants this step; returns the tokens read."""
        young = any(m.job.generated_tokens < self.policy.young_tokens for m in self._members.values())
        plan = self.policy.plan(self._reading, len(self._members), young)
        chosen = {id(r) for r, _ in plan}
        for r in self._reading:
            r.waited = 0 if id(r) in chosen else r.waited + 1
        total = 0
        for r, n in plan:
            n = min(n, r.checkpoints[0] - r.read) if r.checkpoints else n  # a slice ends at the next boundary
            self._read(r, n)
            total += n
        return total

    def _read(self, r: Reading, n: int) -> None:
        began = time.perf_counter()
        if r.sequence.started is None:
            r.sequence.started = began
        with mx.stream(self._stream):
            self.model.model(mx.array(r.tokens[r.read : r.read + n])[None], cache=r.cache)
            mx.eval([c.state for c in r.cache])
        self.policy.observe_read(r, n, time.perf_counter() - began)
        r.read += n
        if r.checkpoints and r.read == r.checkpoints[0]:
            r.checkpoints.pop(0)
            self._checkpoint(r.sequence.job.prompt.cache_tokens(r.tokens[: r.read]), copy.deepcopy(r.cache))

    # ---- leaving ---------------------------------------------------------

    def _drop_cancelled(self) -> None:
        for r in [r for r in self._reading if r.sequence.job.cancelled.is_set()]:
            self._reading.remove(r)
            r.sequence.finish("cancelled")
        cancelled = [uid for uid, m in self._members.items() if m.job.cancelled.is_set()]
        if cancelled:
            self._remove(cancelled)
            for uid in cancelled:
                self._members.pop(uid).finish("cancelled")

    def _remove(self, uids: list[int]) -> None:
        self._decoding.remove(uids)

    def _fail(self, error: Exception) -> None:
        """End every request in the batch with ``error`` (the engine then drops the batch)."""
        for job in self.jobs:
            job.emit(error)
        self._members.clear()
        self._reading.clear()

    def close(self) -> None:
        self._members.clear()
        self._reading.clear()

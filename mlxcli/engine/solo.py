"""One request generating alone, for what cannot share a batch: quantized KV caches (``--kv-bits``) and
models whose caches cannot merge.

It runs the batch's steps with a batch of one: the prompt cache's longest prefix in, one token per
step (the engine checks its queue and cancellations between steps), the same ``Sequence`` for the
output, and the KV cache back into the prompt cache at the end. For caches that cannot be trimmed, the
prompt's segments up to its last message boundary are read first, a chunk per step, with a checkpoint
at each boundary. mlx-lm's ``generate_step`` does the decoding; it reads the rest of the prompt on its
first step.
"""

from __future__ import annotations

import copy
import logging
from typing import TYPE_CHECKING, Iterator

import mlx.core as mx
from mlx_lm.generate import DEFAULT_QUANTIZED_KV_START, generate_step, maybe_quantize_kv_cache
from mlx_lm.models.cache import make_prompt_cache

from mlxcli.core.errors import EngineFailure
from mlxcli.core.events import FinishReason
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

KV_GROUP_SIZE = 64
# Repetition and presence penalties look back this far; tokens from the prompt cache are shown to them too.
PENALTY_CONTEXT = 256


class _Cancelled(Exception):
    """Raised inside prefill to abandon a job whose reader left."""


class Solo(Runner):
    """Runs one job."""

    def __init__(self, served: "ServedModel", model: "LoadedModel", settings: "EngineSettings", prompt_cache: PromptCache, stream: mx.Stream):
        super().__init__(served, model, settings, prompt_cache, stream)
        self._sequence: Sequence | None = None
        self._steps: Iterator | None = None
        self._cache: list = []
        self._tokens: list[int] = []  # what the KV cache holds: the prompt, then every token fed back
        self._read = 0  # prompt tokens the KV cache holds so far
        self._segments: list[list[int]] = []  # the prompt's segments still to read before decoding starts

    @property
    def jobs(self) -> list["Job"]:
        return [self._sequence.job] if self._sequence is not None else []

    def has_room(self) -> bool:
        return False  # one job; the next waits for the runner to finish

    def join(self, job: "Job") -> None:
        reuse = self._prompt_cache.fetch(self._cache_key, job.prompt.tokens)
        self._cache = reuse.cache if reuse.cache is not None else make_prompt_cache(self.model.model)
        self._tokens = list(job.prompt.tokens)
        self._read = reuse.cached
        self._segments = segments(self._tokens, reuse.cached, job.prompt.boundaries if self.checkpoints else [])[:-1]
        self._sequence = self._new_sequence(job, reuse.cached, started=True)

    def _start(self, job: "Job") -> None:
        """Decode from here: mlx-lm's generate_step reads the rest of the prompt on its first step."""
        history = mx.array(self._tokens[max(0, self._read - PENALTY_CONTEXT) : self._read])

        def check_cancelled(_done: int, _total: int) -> None:
            if job.cancelled.is_set():
                raise _Cancelled

        self._steps = generate_step(
            mx.array(self._tokens[self._read :]),
            self.model.model,
            self._stream,
            max_tokens=job.max_tokens,
            sampler=self._samplers.sampler(job),
            logits_processors=[_with_history(p, history) for p in self._samplers.processors(job)],
            prompt_cache=self._cache,
            prefill_step_size=self._settings.prefill_step_size,
            prompt_progress_callback=check_cancelled,
            **self._quantize,
        )

    def _read_segment(self) -> int:
        """One chunk of the prompt up to its next message boundary; there, a checkpoint (a copy of the KV)."""
        end = self._read + len(self._segments[0])
        n = min(self._settings.prefill_step_size, end - self._read)
        with mx.stream(self._stream):
            self.model.model(mx.array(self._tokens[self._read : self._read + n])[None], cache=self._cache)
            if self._quantize:
                maybe_quantize_kv_cache(self._cache, DEFAULT_QUANTIZED_KV_START, **self._quantize)
            mx.eval([c.state for c in self._cache])
        self._read += n
        if self._read == end:
            self._segments.pop(0)
            self._checkpoint(self._tokens[: self._read], copy.deepcopy(self._cache))
        return n

    @property
    def _quantize(self) -> dict:
        return {"kv_bits": self._settings.kv_bits, "kv_group_size": KV_GROUP_SIZE} if self._settings.kv_bits else {}

    def step(self) -> int:
        """One token (the first step reads the rest of the prompt), a chunk of a segment, or the end of the
        job; returns the prompt tokens it read."""
        sequence = self._sequence
        assert sequence is not None
        if sequence.job.cancelled.is_set():
            self._end("cancelled")
            return 0
        read = 0
        try:
            if self._segments:
                return self._read_segment()
            if self._steps is None:
                self._start(sequence.job)
                read = len(self._tokens) - self._read
            token, logprobs = next(self._steps)
        except _Cancelled:
            self._end("cancelled")
            return 0
        except Exception as exc:  # one request's failure must not stop the engine
            if self._settings.distributed and collective_failed(exc):  # ...unless a rank is gone: the group is
                raise  # broken, and the next collective might never return
            log.exception("generation failed for %s", sequence.job.request.request_id)
            sequence.job.emit(EngineFailure(f"generation failed: {type(exc).__name__}: {exc}"))
            self._end(None)
            return 0
        self._tokens.append(token)
        finish: FinishReason | None = None
        if token in self.served.stop_tokens:
            finish = "stop"
        elif sequence.job.generated_tokens + 1 >= sequence.job.max_tokens:
            finish = "length"
        if sequence.add(token, finish, logprobs) and finish is None:
            finish = "stop"  # a stop string
        if finish is not None:
            self._keep()
            self._end(finish)
        return read

    def _keep(self) -> None:
        """Leave the finished job's KV cache in the prompt cache."""
        self._prompt_cache.store(self._cache_key, self._tokens, self._cache)

    def _end(self, reason: FinishReason | None) -> None:
        """Close the generator; ``reason`` None: the job already got its error."""
        sequence, self._sequence = self._sequence, None
        if self._steps is not None:
            self._steps.close()
            self._steps = None
        if sequence is not None and reason is not None:
            sequence.finish(reason)

    def close(self) -> None:
        self._end("cancelled")


def _with_history(processor, history: mx.array):
    """A logits processor that also sees the tokens the prompt cache supplied (generate_step shows it
    only the tokens it computes)."""
    if history.size == 0:
        return processor
    return lambda tokens, logits: processor(mx.concatenate([history, tokens]), logits)

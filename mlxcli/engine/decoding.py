"""One request's generation, seen from its output side (shared by the batched and the solo runner).

Generated tokens → text (the tokenizer's streaming detokenizer) → events (reasoning, tool
calls, stop strings: see output.py), token counts and timings, and the closing ``Finish``.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import mlx.core as mx

from mlxcli.core.events import Finish, FinishReason, Timings, Usage
from mlxcli.engine.output import OutputProcessor, ReasoningMode

if TYPE_CHECKING:
    from mlx_lm.tokenizer_utils import TokenizerWrapper

    from mlxcli.engine.engine import Job


class Sequence:
    """One request being generated: a token at a time in, its events out; ``finish`` sends the last one."""

    def __init__(
        self, job: "Job", tokenizer: "TokenizerWrapper", reasoning: ReasoningMode, cached_tokens: int = 0, *, caches: bool = False
    ):
        self.job = job
        self.cached_tokens = cached_tokens
        self.caches = caches  # the runner leaves this job's KV in the prompt cache when it ends
        self.started = time.perf_counter()
        self.first_token_at: float | None = None
        self.stop_sequence: str | None = None
        self._detokenizer = tokenizer.detokenizer
        self._output = OutputProcessor(job.sampling.stop, job.prompt.plan, reasoning=reasoning)

    def add(self, token: int, finish: FinishReason | None = None) -> bool:
        """One generated token; ``finish`` when it is the last (``stop``: an end-of-sequence token, which is
        not output). True once a stop string has ended the answer."""
        if self.first_token_at is None:
            self.first_token_at = time.perf_counter()
        eos = finish == "stop"
        if not eos:
            self._detokenizer.add_token(token)
            self.job.generated_tokens += 1
        if finish is not None:
            self._detokenizer.finalize()
        events, self.stop_sequence = self._output.feed(self._detokenizer.last_segment)
        for event in events:
            self.job.emit(event)
        return self.stop_sequence is not None

    def finish(self, reason: FinishReason) -> None:
        if self.stop_sequence is not None:
            reason = "stop"
        if reason != "cancelled":
            for event in self._output.finish():
                self.job.emit(event)
            reason = self._output.finish_reason(reason)
        ended = time.perf_counter()
        first_token_at = self.first_token_at or ended
        timings = Timings(
            queued=self.started - self.job.submitted,
            prefill=first_token_at - self.started,
            decode=ended - first_token_at,
            peak_memory_gb=mx.get_peak_memory() / 1e9,
        )
        usage = Usage(
            prompt_tokens=len(self.job.prompt.tokens),
            completion_tokens=self.job.generated_tokens,
            cached_tokens=self.cached_tokens,
            cache_write_tokens=len(self.job.prompt.tokens) - self.cached_tokens if self.caches and reason != "cancelled" else 0,
            reasoning_tokens=self._output.reasoning_tokens,
        )
        self.job.emit(Finish(reason, usage, timings, self.stop_sequence, self.job.compaction))

"""One request's generation, seen from its output side (shared by the batched and the solo runner).

Generated tokens → text (the tokenizer's streaming detokenizer) → events (reasoning, tool
calls, stop strings: see output.py), token counts and timings, and the closing ``Finish``.
"""

from __future__ import annotations

import time
from array import array
from typing import TYPE_CHECKING

import mlx.core as mx

from mlxcli.core.events import Finish, FinishReason, Timings, TokenLogprob, Usage
from mlxcli.engine.output import OutputProcessor, ReasoningMode

if TYPE_CHECKING:
    from mlx_lm.tokenizer_utils import TokenizerWrapper

    from mlxcli.engine.job import Job


class Sequence:
    """One request being generated: a token at a time in, its events out; ``finish`` sends the last one."""

    def __init__(self, job: "Job", tokenizer: "TokenizerWrapper", reasoning: ReasoningMode, *, caches: bool = False):
        self.job = job
        self.caches = caches  # the runner leaves this job's KV in the prompt cache when it ends
        self.started: float | None = None  # when its prompt started being read (the runner sets it)
        self.first_token_at: float | None = None
        self._last_token_at = 0.0
        self._gaps = array("d")  # between output tokens: one clock read per token, nothing more on this thread
        self.stop_sequence: str | None = None
        self._tokenizer = tokenizer
        self._detokenizer = tokenizer.detokenizer
        if job.request.prompt is not None:
            _keep_leading_space(self._detokenizer)
        self._output = OutputProcessor(job.sampling.stop, job.prompt.plan, reasoning=reasoning)

    def add(self, token: int, finish: FinishReason | None = None, logprobs: mx.array | None = None) -> bool:
        """One generated token (``logprobs``: the distribution it was drawn from); ``finish`` when it is the
        last (``stop``: an end-of-sequence token, which is not output). True once a stop string has ended the answer."""
        now = time.perf_counter()
        if self.first_token_at is None:
            self.first_token_at = now
        eos = finish == "stop"
        if not eos:
            if self.job.generated_tokens:
                self._gaps.append(now - self._last_token_at)
            self._last_token_at = now
            if self.job.request.logprobs is not None and logprobs is not None:
                self.job.emit(self._logprob(token, logprobs, self.job.request.logprobs))
            self._detokenizer.add_token(token)
            self.job.generated_tokens += 1
        if finish is not None:
            self._detokenizer.finalize()
        events, self.stop_sequence = self._output.feed(self._detokenizer.last_segment)
        for event in events:
            self.job.emit(event)
        return self.stop_sequence is not None

    def _logprob(self, token: int, logprobs: mx.array, top: int) -> TokenLogprob:
        logprobs = logprobs.reshape(-1).astype(mx.float32)
        alternatives: list[tuple[str, float]] = []
        if top:
            ids = mx.argpartition(-logprobs, top - 1)[:top]
            values = logprobs[ids].tolist()
            ranked = sorted(zip(ids.tolist(), values), key=lambda pair: -pair[1])
            alternatives = [(self._tokenizer.decode([i]), v) for i, v in ranked]
        return TokenLogprob(self._tokenizer.decode([token]), logprobs[token].item(), alternatives)

    def finish(self, reason: FinishReason) -> None:
        if self.stop_sequence is not None:
            reason = "stop"
        if reason != "cancelled":
            for event in self._output.finish():
                self.job.emit(event)
            reason = self._output.finish_reason(reason)
        ended = time.perf_counter()
        first_token_at = self.first_token_at or ended
        started = self.started or first_token_at
        timings = Timings(
            queued=started - self.job.submitted,
            prefill=first_token_at - started,
            decode=ended - first_token_at,
            peak_memory_gb=mx.get_peak_memory() / 1e9,
            token_gaps=self._gaps,
        )
        usage = Usage(
            prompt_tokens=len(self.job.prompt.tokens),
            completion_tokens=self.job.generated_tokens,
            cached_tokens=self.job.cached_tokens,
            cache_write_tokens=len(self.job.prompt.tokens) - self.job.cached_tokens if self.caches and reason != "cancelled" else 0,
            reasoning_tokens=self._output.reasoning_tokens,
        )
        self.job.emit(Finish(reason, usage, timings, self.stop_sequence, self.job.compaction))


def _keep_leading_space(detokenizer) -> None:
    """A raw prompt's continuation keeps its leading space (" Paris"); mlx-lm's streaming detokenizers
    drop it, which suits a chat answer only."""
    if hasattr(detokenizer, "trim_space"):  # SPM
        detokenizer.trim_space = False
    if hasattr(detokenizer, "_maybe_trim_space"):  # BPE
        detokenizer._maybe_trim_space = lambda text: text

"""One request's generation, seen from its output side (shared by the batched and the solo path).

Sampling: the request's settings → an mlx-lm sampler and logits processors.
Output: generated text → events (reasoning, tool calls, stop strings: see
output.py), token counts and timings, and the closing ``Finish``.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Callable

import mlx.core as mx
from mlx_lm.sample_utils import apply_min_p, apply_top_k, apply_top_p, make_logits_processors, make_sampler

from mlxcli.core.events import FinishReason, Finish, Timings, Usage
from mlxcli.engine.output import OutputProcessor, ReasoningMode

if TYPE_CHECKING:
    from mlxcli.engine.engine import Job
    from mlxcli.engine.loading import LoadedModel
    from mlxcli.engine.settings import EngineSettings

Sampler = Callable[[mx.array], mx.array]


class Samplers:
    """Samplers for one model, shared between requests with equal settings.

    mlx-lm samples a whole batch in one call when its rows share one sampler object.
    A request with a ``seed`` gets a sampler of its own that draws from its own
    random key, so its answer does not depend on what else runs.
    """

    MAX_KINDS = 64  # distinct settings kept; clients choose them freely

    def __init__(self, model: "LoadedModel", settings: "EngineSettings"):
        self._vocab = model.config.get("vocab_size") or len(model.tokenizer)
        self._eos = list(model.tokenizer.eos_token_ids)
        self._settings = settings
        self._made: dict[tuple, Sampler] = {}

    def sampler(self, job: "Job") -> Sampler:
        s, defaults = job.sampling, self._settings
        temperature = defaults.temperature if s.temperature is None else s.temperature
        top_p = defaults.top_p if s.top_p is None else s.top_p
        key = (
            temperature,
            top_p if 0 < top_p < 1 else 0.0,
            s.min_p or 0.0,
            # 0 (off) when top_k keeps every token anyway: mlx-lm refuses k >= the vocabulary size.
            s.top_k if s.top_k and s.top_k < self._vocab else 0,
        )
        if s.seed is not None and temperature > 0:
            return _seeded_sampler(*key, seed=s.seed)
        if key not in self._made:
            if len(self._made) >= self.MAX_KINDS:
                self._made.clear()
            self._made[key] = make_sampler(temp=key[0], top_p=key[1], min_p=key[2], top_k=key[3])
        return self._made[key]

    def processors(self, job: "Job") -> list:
        s = job.sampling
        return make_logits_processors(
            # ignore_eos: end-of-sequence made unreachable, so a benchmark gets exactly max_tokens.
            logit_bias=dict.fromkeys(self._eos, -float("inf")) if s.ignore_eos else None,
            repetition_penalty=s.repetition_penalty,
            presence_penalty=s.presence_penalty,
            frequency_penalty=s.frequency_penalty,
        )


def _seeded_sampler(temperature: float, top_p: float, min_p: float, top_k: int, *, seed: int) -> Sampler:
    """``make_sampler``'s chain, drawing from a random key of its own instead of the global one."""
    key = mx.random.key(seed)

    def sample(logprobs: mx.array) -> mx.array:
        nonlocal key
        if top_p:
            logprobs = apply_top_p(logprobs, top_p)
        if min_p:
            logprobs = apply_min_p(logprobs, min_p)
        if top_k:
            logprobs = apply_top_k(logprobs, top_k)
        key, draw = mx.random.split(key)
        return mx.random.categorical(logprobs * (1.0 / temperature), key=draw)

    return sample


class Decoding:
    """Feeds one job's generated text to its events; ``finish`` sends the closing event."""

    def __init__(self, job: "Job", reasoning: ReasoningMode, cached_tokens: int = 0):
        self.job = job
        self.cached_tokens = cached_tokens
        self.started = time.perf_counter()
        self.first_token_at: float | None = None
        self.stop_sequence: str | None = None
        self._output = OutputProcessor(job.sampling.stop, job.prompt.plan, reasoning=reasoning)

    def add(self, text: str, *, counted: bool = True) -> bool:
        """The text of one more token (``counted``: False for the end-of-sequence token, which is not
        output); True once a stop string has ended the answer."""
        if self.first_token_at is None:
            self.first_token_at = time.perf_counter()
        if counted:
            self.job.generated_tokens += 1
        events, self.stop_sequence = self._output.feed(text)
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
            reasoning_tokens=self._output.reasoning_tokens,
        )
        self.job.emit(Finish(reason, usage, timings, self.stop_sequence))

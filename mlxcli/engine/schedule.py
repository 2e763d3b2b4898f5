"""The batch's scheduling policy: what one step reads of the prompts waiting, given what it decodes.

Every step decodes one token for every running stream first. Prompt reading then gets a share of the
time, measured as the engine runs (the way vLLM sizes its chunked-prefill token budget, here in
seconds): while streams decode, each step earns ``prefill_ratio`` times the decode step's measured time
of reading credit, so prompt reading keeps most of the machine; while a young stream (fewer than
``young_tokens`` tokens out: a short answer, an agent's side request) decodes, it earns ``young_ratio``
times, so a short answer is not stretched over a long prompt (only a long one: prompts of one slice or less,
a burst of short requests, are read at the full share, so that they start answering together). A step reads while it has credit and
pays the time its slices really took, so the shares hold whatever the estimates (and a slice too small
to be worth its forward pass waits for the next step's credit). No step reads for longer than
``max_step_seconds`` minus its decode step: the bound on the wait between two tokens. With nothing
decoding, a step reads for ``max_step_seconds`` (new arrivals wait at most that for their turn). Time
becomes tokens through the measured cost per token of the prompt being read (attention grows with its
context), at most ``--prefill-step-size`` a slice.

Among the prompts waiting, the shortest remaining goes first, aged by the steps it has waited (its
remaining length divided by ``1 + waited / AGE_STEPS``), so a long prompt is never starved. Each is
read alone in its own cache: a short prompt is never padded to a long one's length.

Pure Python: no MLX. ``Policy`` holds the knobs and the measurements; ``plan`` is the decision.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Protocol, Sequence

MIN_CHUNK = 16  # prompt tokens a slice reads at least
FIRST_CHUNK = 64  # ... and reads when nothing has been measured yet
MIN_SHARE = 0.1  # credit a step earns at least, in decode steps: every waiting prompt makes progress
AGE_STEPS = 32  # steps of waiting that halve a prompt's remaining length in the ordering
SMOOTHING = 0.3  # weight of the newest measurement in the running estimates


class Waiting(Protocol):
    """A prompt being read (batch.py's Reading)."""

    remaining: int  # prompt tokens still to read into its cache (the last is read by its first decode step)
    waited: int  # steps since it was last read (or since it arrived)
    seconds_per_token: float | None  # measured on its slices so far


@dataclass
class Policy:
    prefill_ratio: float = 10.0
    young_ratio: float = 1.0
    young_tokens: int = 32
    max_step_seconds: float = 1.0
    max_chunk: int = 512  # --prefill-step-size
    fixed: bool = False  # slices of max_chunk tokens, whatever was measured (--distributed: every rank decides alike)
    decode_seconds: float | None = None  # running estimate of one decode step
    token_seconds: float | None = None  # running estimate of reading one prompt token (any prompt)
    credit: float = 0.0  # seconds of reading earned and not spent (negative: a slice overran its plan)

    def observe_decode(self, seconds: float) -> None:
        self.decode_seconds = _smooth(self.decode_seconds, seconds)

    def observe_read(self, prompt: Waiting, tokens: int, seconds: float) -> None:
        """One slice of ``prompt`` read: its time is paid from the credit, and its cost per token measured."""
        per_token = seconds / max(tokens, 1)
        self.token_seconds = _smooth(self.token_seconds, per_token)
        prompt.seconds_per_token = _smooth(prompt.seconds_per_token, per_token)
        self.credit -= seconds

    def earn(self, decoding: int, young: bool) -> float:
        """This step's reading time: the credit, after what this step earns, given ``decoding`` streams
        (any of them ``young``)."""
        if not decoding or self.decode_seconds is None:
            self.credit = self.max_step_seconds  # nobody waits for a token: a whole step of reading
            return self.credit
        earned = max(self.young_ratio if young else self.prefill_ratio, MIN_SHARE) * self.decode_seconds
        # A slice that overran its plan is paid back over the next steps, but never more than a step's
        # worth: a prompt arriving now does not wait for an old estimate's mistake.
        self.credit = min(max(self.credit, -earned) + earned, self.max_step_seconds - self.decode_seconds)
        return self.credit

    def plan(self, waiting: Sequence[Waiting], decoding: int, young: bool) -> list[tuple[Waiting, int]]:
        """The prompts this step reads, in order, and how many tokens of each."""
        if self.fixed:
            return [(first, min(first.remaining, self.max_chunk))] if (first := next(iter(order(waiting)), None)) else []
        if not waiting:
            return []
        # A young answer is protected from long prompts only: prompts of one slice or less (a burst of short
        # requests) are read at the full share, so they join the decode batch together.
        young = young and order(waiting)[0].remaining > self.max_chunk
        budget = self.earn(decoding, young)
        full = not decoding or budget >= self.max_step_seconds - (self.decode_seconds or 0.0)  # it can grow no more
        chosen: list[tuple[Waiting, int]] = []
        for prompt in order(waiting):
            cost = prompt.seconds_per_token or self.token_seconds
            if cost is None:  # nothing measured yet: a small slice, to measure
                return [(prompt, min(prompt.remaining, self.max_chunk, FIRST_CHUNK))]
            least = min(MIN_CHUNK, prompt.remaining)
            tokens = min(prompt.remaining, self.max_chunk, int(budget / cost))
            if tokens < least:
                if chosen or not full:
                    break  # not worth a forward pass: the credit waits for the next step
                tokens = least  # the credit cannot grow enough for it (a slow machine): read a little anyway
            chosen.append((prompt, tokens))
            budget -= tokens * cost
        return chosen


def order(waiting: Iterable[Waiting]) -> list[Waiting]:
    """Shortest remaining first, aged: a prompt's remaining length counts less the longer it has waited."""
    return sorted(waiting, key=lambda p: p.remaining / (1 + p.waited / AGE_STEPS))


def _smooth(estimate: float | None, value: float) -> float:
    return value if estimate is None else (1 - SMOOTHING) * estimate + SMOOTHING * value


@dataclass
class Histogram:
    """Cumulative bucket counts, written on the engine thread and read at scrape time (/metrics)."""

    buckets: tuple[float, ...]
    counts: list[int] = field(default_factory=list)
    total: float = 0.0

    def __post_init__(self) -> None:
        self.counts = [0] * (len(self.buckets) + 1)

    def observe(self, value: float) -> None:
        self.counts[next((i for i, b in enumerate(self.buckets) if value <= b), len(self.buckets))] += 1
        self.total += value

    def snapshot(self) -> dict:
        return {"buckets": list(self.buckets), "counts": list(self.counts), "sum": self.total}


STEP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.5, 5.0, 10.0)
TOKEN_BUCKETS = (0, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096)


@dataclass
class StepStats:
    """What /metrics shows of the engine's steps: their time and the prompt tokens each read."""

    seconds: Histogram = field(default_factory=lambda: Histogram(STEP_BUCKETS))
    prompt_tokens: Histogram = field(default_factory=lambda: Histogram(TOKEN_BUCKETS))

    def observe(self, seconds: float, prompt_tokens: int) -> None:
        self.seconds.observe(seconds)
        self.prompt_tokens.observe(prompt_tokens)

    def snapshot(self) -> dict:
        return {"seconds": self.seconds.snapshot(), "prompt_tokens": self.prompt_tokens.snapshot()}

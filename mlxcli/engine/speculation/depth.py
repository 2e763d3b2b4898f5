"""How many proposed tokens a row has verified each step: from its own recent acceptance and the measured
cost of a wider step, down to 0 (no speculation) where its proposals keep failing.

A row's proposals are accepted one after another until the first wrong one, so with a per-token
acceptance ``p`` a step with ``k`` proposals yields ``1 + p + ... + p^k`` tokens; it costs
``1 + overhead + slope * k`` plain steps (``StepCost``: a speculating step cannot overlap the next one
with the host's work, and each proposal widens the forward pass). A row takes the ``k`` with the most
tokens per unit of cost, and none when no ``k`` beats a plain step. The miss throttle: a row whose
proposals failed at the first token twice in a row sits out 2, then 4, ... up to ``MAX_WAIT`` steps
before it proposes again (prose: a lookup finds some repeated words, and they rarely go on). A row that
keeps declining its proposals tries them anyway every ``PROBE``-th time: the estimates it declined on
(its acceptance, the step's cost) are only ever measured by trying.

Pure Python: no MLX.
"""

from __future__ import annotations

from dataclasses import dataclass

DECAY = 0.8  # weight of a row's older acceptance against its newest step
MAX_WAIT = 64  # steps a failing row sits out at most
PRIOR_HITS, PRIOR_TRIES = 3.0, 4.0  # a new row's acceptance before it has any: optimistic, so it tries
SMOOTHING = 0.2  # weight of the newest measurement in the step cost's running estimates
PROBE = 16  # a row that declined its proposals this many times running tries them


@dataclass
class StepCost:
    """A speculating step's time over a plain step's, as ``1 + overhead + slope * proposals`` (the widest
    row's), from the step times measured. Starts from a guess that favours trying."""

    plain: float | None = None  # seconds: a plain step, running estimate
    overhead: float = 0.1
    slope: float = 0.05

    def observe_plain(self, seconds: float) -> None:
        self.plain = _smooth(self.plain, seconds)

    def observe_speculating(self, seconds: float, proposals: int) -> None:
        """A speculating step with ``proposals`` in its widest row took ``seconds``."""
        if self.plain is None or proposals < 1:
            return
        excess = max(seconds / self.plain - 1.0, 0.0)
        # Split the excess between the fixed and the per-token part as the estimates do now, then
        # move each towards its share: the narrow steps teach the overhead, the wide ones the slope.
        predicted = self.overhead + self.slope * proposals
        share = self.overhead / predicted if predicted > 0 else 0.5
        self.overhead = _smooth(self.overhead, excess * share)
        self.slope = _smooth(self.slope, excess * (1 - share) / proposals)

    def relative(self, proposals: int) -> float:
        return 1.0 + (self.overhead + self.slope * proposals if proposals else 0.0)


@dataclass
class Depth:
    """One row's acceptance and throttle."""

    hits: float = PRIOR_HITS  # decayed count of accepted proposals
    tries: float = PRIOR_TRIES  # ... and of verified ones up to the first wrong one, included
    misses: int = 0  # steps in a row whose first proposal was wrong
    wait: int = 0  # steps left to sit out
    declined: int = 0  # times running it had proposals and verified none

    @property
    def acceptance(self) -> float:
        return self.hits / self.tries

    def ready(self) -> bool:
        """Whether the row may propose this step (a throttled one counts the step it sits out)."""
        if self.wait:
            self.wait -= 1
            return False
        return True

    def choose(self, available: int, cost: StepCost, max_depth: int) -> int:
        """How many of the ``available`` proposals to verify."""
        p = min(self.acceptance, 0.99)
        best, best_rate, expected = 0, 1.0, 1.0
        for k in range(1, min(available, max_depth) + 1):
            expected += p**k
            rate = expected / cost.relative(k)
            if rate > best_rate:
                best, best_rate = k, rate
        if available and not best:
            self.declined += 1
            if self.declined >= PROBE:
                best = min(available, max_depth)
        if best:
            self.declined = 0
        return best

    def settle(self, proposed: int, accepted: int) -> None:
        """``accepted`` of the row's ``proposed`` tokens came true."""
        if not proposed:
            return
        self.hits = DECAY * self.hits + accepted
        self.tries = DECAY * self.tries + accepted + (accepted < proposed)
        if accepted:
            self.misses = 0
            return
        self.misses += 1
        if self.misses >= 2:
            self.wait = min(2 ** (self.misses - 1), MAX_WAIT)


def _smooth(estimate: float | None, value: float) -> float:
    return value if estimate is None else (1 - SMOOTHING) * estimate + SMOOTHING * value

"""What /metrics shows of one model's speculation: plain counters, written on the engine thread and read
at scrape time (as the step histograms are). Pure Python: no MLX."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class SpecStats:
    mode: str | None = None  # "ngram", "draft", "ngram+draft" while it speculates; None: off
    steps: int = 0  # speculating steps (one verification forward pass each)
    proposed: int = 0  # tokens verified
    accepted: int = 0  # ... that came true
    # by position in a row's proposal (1 = the first proposed token): verified, and came true
    proposed_at: list[int] = field(default_factory=list)
    accepted_at: list[int] = field(default_factory=list)

    def record(self, proposed: int, accepted: int) -> None:
        """One row's proposal: ``accepted`` of its ``proposed`` tokens came true."""
        self.proposed += proposed
        self.accepted += accepted
        if len(self.proposed_at) < proposed:
            grow = proposed - len(self.proposed_at)
            self.proposed_at += [0] * grow
            self.accepted_at += [0] * grow
        for i in range(proposed):
            self.proposed_at[i] += 1
            self.accepted_at[i] += i < accepted

    def snapshot(self) -> dict:
        return {
            "mode": self.mode,
            "steps": self.steps,
            "proposed": self.proposed,
            "accepted": self.accepted,
            "proposed_at": list(self.proposed_at),
            "accepted_at": list(self.accepted_at),
        }

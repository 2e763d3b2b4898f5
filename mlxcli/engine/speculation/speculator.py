"""What a decode batch speculates with, and each step's plan: which rows propose how many tokens.

Per row, each step: nothing while its miss throttle holds it (depth.py); else its prompt lookup's
continuation (lookup.py), else, with a draft model, the draft's tokens (draft.py); as many of them as
its acceptance and the measured step cost make worth verifying, within what its ``max_tokens`` leaves.
A row's processors may cut its proposals where they forbid a token (a grammar: ``limit``). When no row
proposes, the step is a plain one, pipelined as ever. The plan needs no token of this step: the
lookup guesses the row's pending token as well (a guess that fails only costs that row its
proposals), and the draft reads the pending token as it computes, so deciding never waits for the
device.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import mlx.core as mx

from mlxcli.engine.speculation.depth import Depth, StepCost
from mlxcli.engine.speculation.lookup import PromptLookup
from mlxcli.engine.speculation.stats import SpecStats

if TYPE_CHECKING:
    from mlxcli.engine.speculation.draft import Draft


@dataclass
class Plan:
    depths: list[int]  # proposals each row verifies (0: its pending token alone)
    columns: mx.array  # [rows, the largest depth] int32: each row's proposals (beyond its depth: filler)
    drafted: mx.array | None = None  # [rows, steps]: what the draft model proposed, when it ran


@dataclass(eq=False)
class RowState:
    lookup: PromptLookup | None
    depth: Depth


class Speculator:
    def __init__(self, stats: SpecStats, *, lookup: bool, draft: "Draft | None", max_depth: int):
        self.stats = stats
        self.lookup = lookup
        self.draft = draft
        self.max_depth = max_depth
        self.cost = StepCost()

    # ---- the batch's rows ----

    def add(self, rows: list) -> None:
        for row in rows:
            row.spec = RowState(PromptLookup(row.tokens) if self.lookup and row.speculate else None, Depth())
        if self.draft is not None:
            self.draft.add(rows)

    def filter(self, keep: list[int]) -> None:
        if self.draft is not None:
            self.draft.filter(keep)

    def extend(self, row, tokens: list[int]) -> None:
        """``tokens`` handed out by ``row`` (now in its KV cache)."""
        if row.spec.lookup is not None:
            row.spec.lookup.extend(tokens)

    # ---- a step ----

    def plan(self, batch: Any) -> Plan | None:
        """This step's proposals (``batch``: the DecodeBatch), or None for a plain step."""
        rows = batch.rows
        depths, found, drafting = [0] * len(rows), [[] for _ in rows], [0] * len(rows)
        for e, row in enumerate(rows):
            room = row.max_tokens - row.produced - 1  # tokens it may hand out after its pending one
            state: RowState = row.spec
            if room <= 0 or not row.speculate or not state.depth.ready():
                continue
            if state.lookup is not None:
                found[e] = state.lookup.propose(min(room, self.max_depth) + 1)[1:]  # its first: the pending one
            if found[e]:
                depths[e] = state.depth.choose(len(found[e]), self.cost, self.max_depth)
                found[e] = found[e][: depths[e]]
            elif self.draft is not None:
                depths[e] = drafting[e] = state.depth.choose(min(room, self.max_depth), self.cost, self.max_depth)
        widest = max(depths)
        if not widest:
            return None
        columns = mx.array([f + [0] * (widest - len(f)) for f in found], dtype=mx.int32)
        drafted = None
        if any(drafting):
            drafted = self.draft.propose(rows, batch.pending, max(drafting))
            use = mx.array([bool(d) for d in drafting])[:, None]
            padded = mx.pad(drafted, [(0, 0), (0, widest - drafted.shape[1])]) if drafted.shape[1] < widest else drafted[:, :widest]
            columns = mx.where(use, padded, columns)
        self._cut(rows, batch.pending, columns, depths)
        return Plan(depths, columns, drafted)

    def _cut(self, rows: list, pending: mx.array, columns: mx.array, depths: list[int]) -> None:
        """Proposals end before the first token a row's processors forbid (a grammar's ``limit``)."""
        limited = [e for e, row in enumerate(rows) if depths[e] and any(hasattr(p, "limit") for p in row.processors)]
        if not limited:
            return
        mx.eval(pending, columns)
        pending_, columns_ = pending.tolist(), columns.tolist()
        for e in limited:
            ahead = [pending_[e]] + columns_[e][: depths[e]]
            allowed = min(p.limit(ahead) for p in rows[e].processors if hasattr(p, "limit")) - 1
            depths[e] = max(0, min(depths[e], allowed))

    def settle(self, batch: Any, plan: Plan, accepted: list[int], handed_out: list[list[int]]) -> None:
        """After the verification: ``accepted[i]`` of row i's proposals came true; it handed out ``handed_out[i]``."""
        for row, k, a in zip(batch.rows, plan.depths, accepted):
            if k:
                row.spec.depth.settle(k, a)
                self.stats.record(k, a)
        if plan.drafted is not None:
            self.draft.settle(plan.drafted.tolist(), handed_out)

    def observe(self, seconds: float, plan: Plan | None) -> None:
        """A step's time: plain, or speculating with its widest row's proposals."""
        if plan is None:
            self.cost.observe_plain(seconds)
            return
        self.stats.steps += 1
        self.cost.observe_speculating(seconds, max(plan.depths))

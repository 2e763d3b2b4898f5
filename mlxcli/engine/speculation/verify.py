"""A speculating step: every row's pending token and its own proposals (``k`` of them, 0 allowed) in one
forward pass of the whole batch, ``[rows, 1 + the largest k]``; each row accepts its own prefix.

At each of a row's positions the target samples its token exactly as a plain step would (the row's
processors see the tokens before that position, its sampler draws as it would have); a proposed token
is accepted while it equals the token sampled at its position, and the token sampled after the last
accepted one becomes the row's pending token. So greedy output is the target's own, and sampled output
keeps the target's distribution (the proposals are never sampled from: prompt lookup copies, a draft
model proposes its argmax). A row's unused positions are then dropped from its KV cache (rowcache.py),
its stateful processors (a grammar) and its seeded sampler rewound by as many.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import mlx.core as mx

if TYPE_CHECKING:
    from mlxcli.engine.speculation.speculator import Plan

Row = Any  # decode.Row (decode.py runs this module: it may not import it back)


def verify(batch: Any, plan: "Plan") -> tuple[list[list[int]], list[list[mx.array]]]:
    """``batch``: the DecodeBatch. Each row's tokens to hand out, and their logprobs."""
    rows, depths = batch.rows, plan.depths
    width = 1 + max(depths)
    inputs = mx.concatenate([batch.pending.astype(mx.int32)[:, None], plan.columns[:, : width - 1]], axis=1)
    logits = batch.model(inputs, cache=batch.cache)
    pieces, contexts, starts, at = [], [], [], 0
    for e, (row, k) in enumerate(zip(rows, depths)):
        row_logits = logits[e, : k + 1]
        if row.processors:
            context = row.context.update_and_fetch(inputs[e, :1])  # with its pending token
            contexts.append(context)
            row_logits = _processed(row, row_logits, context, inputs[e, 1 : k + 1])
        pieces.append(row_logits)
        starts.append(at)
        at += k + 1
    flat = mx.concatenate(pieces, axis=0)
    logprobs = flat - mx.logsumexp(flat, axis=-1, keepdims=True)
    drawn = _draw(rows, depths, starts, logprobs)
    mx.eval(drawn, logprobs, inputs, batch.pending_logprobs, contexts)
    drawn_, inputs_ = drawn.tolist(), inputs.tolist()

    tokens, token_logprobs, pending, pending_logprobs, drops, accepted = [], [], [], [], [], []
    for e, (row, k) in enumerate(zip(rows, depths)):
        own, o = inputs_[e][1 : k + 1], starts[e]
        a = 0
        while a < k and drawn_[o + a] == own[a]:
            a += 1
        tokens.append([inputs_[e][0]] + own[:a])
        token_logprobs.append([batch.pending_logprobs[e]] + [logprobs[o + j] for j in range(a)])
        pending.append(drawn_[o + a])
        pending_logprobs.append(logprobs[o + a])
        drops.append(width - 1 - a)
        accepted.append(a)
        _rewind(row, k - a)
        if a and row.context is not None:
            row.context.update_and_fetch(mx.array(own[:a], dtype=mx.int32))
    for c in batch.cache:
        c.drop(drops)
    batch.pending = mx.array(pending, dtype=mx.int32)
    batch.pending_logprobs = pending_logprobs
    batch.speculator.settle(batch, plan, accepted, tokens)
    return tokens, token_logprobs


def _processed(row: Row, logits: mx.array, context: mx.array, proposed: mx.array) -> mx.array:
    """The row's processors at each of its positions, in order (a grammar consumes each position's
    token before it masks the next)."""
    steps = []
    for j in range(logits.shape[0]):
        seen = context if j == 0 else mx.concatenate([context, proposed[:j].astype(context.dtype)])
        here = logits[j : j + 1]
        for processor in row.processors:
            here = processor(seen, here)
        steps.append(here)
    return mx.concatenate(steps, axis=0)


def _draw(rows: list[Row], depths: list[int], starts: list[int], logprobs: mx.array) -> mx.array:
    """A token at each row's positions: one call for the rows that share a sampler; a sampler whose draws
    depend on their position (a seed) draws once per position."""
    parts: list[mx.array | None] = [None] * len(rows)
    groups: dict[int, tuple] = {}
    for e, row in enumerate(rows):
        groups.setdefault(id(row.sampler), (row.sampler, []))[1].append(e)
    for sampler, members in groups.values():
        if hasattr(sampler, "rewind"):
            for e in members:
                positions = [sampler(logprobs[starts[e] + j : starts[e] + j + 1]) for j in range(depths[e] + 1)]
                parts[e] = mx.concatenate(positions)
            continue
        index = [i for e in members for i in range(starts[e], starts[e] + depths[e] + 1)]
        drawn = sampler(logprobs[mx.array(index)] if len(index) < logprobs.shape[0] else logprobs)
        at = 0
        for e in members:
            parts[e] = drawn[at : at + depths[e] + 1]
            at += depths[e] + 1
    return mx.concatenate(parts)


def _rewind(row: Row, n: int) -> None:
    """Forget the last ``n`` positions the row's stateful processors and seeded sampler went through."""
    if not n:
        return
    for processor in row.processors:
        if hasattr(processor, "rewind"):
            processor.rewind(n)
    if hasattr(row.sampler, "rewind"):
        row.sampler.rewind(n)

"""A draft model's proposals: a smaller model of the same tokenizer, batched beside the decode batch (the
same rows, in the same order), with a KV cache of its own that drops positions per row as the target's
does (rowcache.py).

The draft's cache lags behind the row: it holds the row's tokens up to ``seen``; the rest (the tokens a
prompt lookup proposed and the target accepted, or a row that sat out the draft's steps) is read first,
with the row's pending token, when the row next drafts. Each drafted token is the draft's argmax: the
target decides what is kept (verify.py), so how proposals are chosen never changes the output, only
how many come true. A joining row's prompt is read by the draft at once (the prompt cache keeps the
target's KV only).
"""

from __future__ import annotations

import mlx.core as mx
import mlx.nn as nn
from mlx_lm.models.cache import make_prompt_cache

from mlxcli.engine.speculation import rowcache

CATCH_UP = 16  # tokens a row may have unread when it drafts; beyond, the draft reads them first
PREFILL_STEP = 512  # prompt tokens per forward pass of the draft


class Draft:
    def __init__(self, model: nn.Module):
        self.model = model
        self.cache: list = []
        self.seen: list[int] = []  # per row: how many of its tokens the draft's cache holds
        self._fed: list[int] = []  # per row, in a drafting step: tokens read before its pending one

    def add(self, rows: list) -> None:
        """Rows joining the batch (``row.tokens``: their prompt); the draft reads all of it but the last."""
        caches = []
        for row in rows:
            cache = make_prompt_cache(self.model)
            prompt = row.tokens[:-1]
            for i in range(0, len(prompt), PREFILL_STEP):
                self.model(mx.array(prompt[i : i + PREFILL_STEP])[None], cache=cache)
                mx.eval([c.state for c in cache])
            caches.append(cache)
        merged = rowcache.merge(caches)
        if not self.seen:
            self.cache = merged
        else:
            for mine, theirs in zip(self.cache, merged):
                mine.extend(theirs)
        self.seen += [len(row.tokens) - 1 for row in rows]

    def filter(self, keep: list[int]) -> None:
        self.seen = [self.seen[i] for i in keep]
        if not keep:
            self.cache = []
            return
        for c in self.cache:
            c.filter(keep)

    def propose(self, rows: list, pending: mx.array, steps: int) -> mx.array:
        """``steps`` drafted tokens per row after its pending token (computing: [rows, steps])."""
        unseen = [row.tokens[seen:] for row, seen in zip(rows, self.seen)]
        while max(map(len, unseen)) > CATCH_UP:
            chunk = [u[: PREFILL_STEP] if len(u) > CATCH_UP else [] for u in unseen]
            self._feed(chunk)
            mx.eval([c.state for c in self.cache])
            self.seen = [s + len(c) for s, c in zip(self.seen, chunk)]
            unseen = [u[len(c) :] for u, c in zip(unseen, chunk)]
        self._fed = [len(u) for u in unseen]
        widest = max(self._fed)
        where = mx.array(self._fed)
        inputs = mx.array([u + [0] * (widest + 1 - len(u)) for u in unseen], dtype=mx.int32)
        inputs = mx.where(mx.arange(widest + 1)[None, :] == where[:, None], pending.astype(mx.int32)[:, None], inputs)
        logits = self.model(inputs, cache=self.cache)
        token = mx.argmax(logits[mx.arange(len(rows)), where], axis=-1).astype(mx.int32)
        for c in self.cache:
            c.drop([widest - n for n in self._fed])
        drafted = [token]
        for _ in range(steps - 1):
            token = mx.argmax(self.model(token[:, None], cache=self.cache)[:, -1, :], axis=-1).astype(mx.int32)
            drafted.append(token)
        return mx.stack(drafted, axis=1)

    def settle(self, drafted: list[list[int]], handed_out: list[list[int]]) -> None:
        """After a drafting step: each row handed out its pending token then ``handed_out[i][1:]``; its
        cache keeps its pending token and the drafted tokens that came true (all but the last drafted
        one were read)."""
        drops = []
        for i, (mine, out) in enumerate(zip(drafted, handed_out)):
            read = mine[:-1]  # the last drafted token was never read back
            kept = 0
            while kept < len(read) and kept + 1 < len(out) and read[kept] == out[kept + 1]:
                kept += 1
            drops.append(len(read) - kept)
            self.seen[i] += self._fed[i] + 1 + kept
        for c in self.cache:
            c.drop(drops)

    def _feed(self, tokens: list[list[int]]) -> None:
        """Each row's ``tokens`` (of any length, none allowed) into the draft's cache."""
        widest = max(map(len, tokens))
        inputs = mx.array([t + [0] * (widest - len(t)) for t in tokens], dtype=mx.int32)
        self.model(inputs, cache=self.cache)
        for c in self.cache:
            c.drop([widest - len(t) for t in tokens])


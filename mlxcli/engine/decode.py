"""The decode batch: the next tokens of every running request, one forward pass for all of them.

Our own step over mlx-lm's models and caches, in place of mlx-lm's ``GenerationBatch``, whose behaviours
it keeps: a sampler per row (one call for the rows that share one), logits processors that see each
row's tokens, each token's logprobs, ``max_tokens`` and stop tokens per row, and the pipelining: a step
leaves the next one's tokens computing while the host hands its own out.

Each row holds a pending token: sampled, not yet in the KV cache. A plain step feeds every pending
token, leaves the next ones computing, and hands the pending ones out. With a ``Speculator`` a step may
instead verify proposals (speculation/verify.py): each row feeds its pending token and its own
proposed tokens (0 allowed), in one forward pass of the whole batch, and hands out its pending token
and the proposals that came true; its KV keeps exactly those. A step hands out one or more tokens per
row; a row ends at its first token that reaches ``max_tokens`` or is a stop token, and the tokens after
it in the same step are not handed out (its KV cache, kept for the prompt cache, drops them too).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

import mlx.core as mx
from mlx_lm.models.cache import TokenBuffer

from mlxcli.engine.speculation import rowcache

if TYPE_CHECKING:
    import mlx.nn as nn

    from mlxcli.engine.speculation.speculator import Speculator

Sampler = Callable[[mx.array], mx.array]


@dataclass(eq=False)
class Row:
    """One request in the decode batch."""

    uid: int
    tokens: list[int]  # what its KV cache holds: the prompt, then every token handed out
    sampler: Sampler
    processors: tuple  # logits processors: ``processor(tokens so far, logits) → logits``
    max_tokens: int
    speculate: bool = True  # may propose tokens (if its batch speculates)
    context: TokenBuffer | None = None  # the tokens its processors see (rows with processors only)
    produced: int = 0  # answer tokens handed out
    spec: Any = None  # the speculator's state of this row


@dataclass
class Output:
    """What one step hands out for one row: one token or more (a speculating step's accepted run)."""

    uid: int
    tokens: list[int]
    logprobs: list[mx.array]  # each token's distribution (the target's own, at its position)
    finish_reason: str | None = None
    prompt_cache: list | None = None  # a finished row's KV cache, holding ``all_tokens``
    all_tokens: list[int] | None = None


@dataclass
class Stepped:
    """A step's tokens per row before they are checked against each row's limits."""

    tokens: list[list[int]]
    logprobs: list[list[mx.array]]


class DecodeBatch:
    def __init__(self, model: "nn.Module", stop_tokens: frozenset[int], speculator: "Speculator | None" = None):
        self.model = model
        self.stop_tokens = stop_tokens
        self.speculator = speculator
        self.rows: list[Row] = []
        self.cache: list = []
        self.pending: mx.array | None = None  # [rows]: each row's sampled token, not yet in its cache
        self.pending_logprobs: list[mx.array] = []

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def uids(self) -> list[int]:
        return [r.uid for r in self.rows]

    # ---- rows joining and leaving ----------------------------------------------------

    def add(self, rows: list[Row], caches: list[list]) -> None:
        """Rows whose KV caches hold all of their prompt but its last token (``row.tokens``'s last): one
        forward pass reads those last tokens and samples each row's first answer token."""
        merged = rowcache.merge(caches) if self.speculator is not None else _merge(caches)
        last = mx.array([r.tokens[-1] for r in rows])
        for r in rows:
            del r.tokens[-1]  # in the cache after the forward pass below
            if r.processors:
                r.context = TokenBuffer(r.tokens)
        logits = self.model(last[:, None], cache=merged)[:, -1, :]
        sampled, logprobs, contexts = self.sample_one(rows, logits, last)
        mx.async_eval(sampled, logprobs, contexts)
        for r, token in zip(rows, last.tolist()):
            r.tokens.append(token)
        if self.speculator is not None:
            self.speculator.add(rows)
        if not self.rows:
            self.cache, self.pending, self.pending_logprobs = merged, sampled, list(logprobs)
        else:
            for mine, theirs in zip(self.cache, merged):
                mine.extend(theirs)
            self.pending = mx.concatenate([self.pending, sampled])
            self.pending_logprobs += list(logprobs)
        self.rows += rows

    def filter(self, keep: list[int]) -> None:
        """Keep only the rows at the indices ``keep``."""
        self.rows = [self.rows[i] for i in keep]
        if not keep:
            self.cache, self.pending, self.pending_logprobs = [], None, []
        else:
            for c in self.cache:
                c.filter(keep)
            self.pending = self.pending[mx.array(keep)]
            self.pending_logprobs = [self.pending_logprobs[i] for i in keep]
        if self.speculator is not None:
            self.speculator.filter(keep)

    def remove(self, uids: list[int]) -> None:
        gone = set(uids)
        self.filter([i for i, r in enumerate(self.rows) if r.uid not in gone])

    def extract(self, index: int, unused: int = 0) -> tuple[list[int], list]:
        """Row ``index``'s tokens and KV cache, less its last ``unused`` tokens (handed to nobody)."""
        row = self.rows[index]
        cache = [c.extract(index) for c in self.cache]
        if unused:
            for c in cache:
                c.trim(unused)
        return row.tokens[: len(row.tokens) - unused], cache

    # ---- a step --------------------------------------------------------------------

    def step(self) -> list[Output]:
        """The next tokens of every row; the rows that end leave the batch."""
        if not self.rows:
            return []
        started = time.perf_counter()
        plan = self.speculator.plan(self) if self.speculator is not None else None
        if plan is None:
            stepped = self._plain()
        else:
            from mlxcli.engine.speculation.verify import verify

            stepped = Stepped(*verify(self, plan))
        outputs = self._hand_out(stepped)
        if self.speculator is not None:
            self.speculator.observe(time.perf_counter() - started, plan)
        return outputs

    def _plain(self) -> Stepped:
        """Every pending token in; the next ones left computing while the pending ones are handed out."""
        inputs = self.pending
        logits = self.model(inputs[:, None], cache=self.cache)[:, -1, :]
        sampled, logprobs, contexts = self.sample_one(self.rows, logits, inputs)
        previous, previous_logprobs = inputs, self.pending_logprobs
        self.pending, self.pending_logprobs = sampled, list(logprobs)
        mx.async_eval(self.pending, self.pending_logprobs, contexts)
        mx.eval(previous, previous_logprobs)
        return Stepped([[t] for t in previous.tolist()], [[lp] for lp in previous_logprobs])

    def sample_one(self, rows: list[Row], logits: mx.array, inputs: mx.array) -> tuple[mx.array, mx.array, list]:
        """Each row's next token from its logits ([rows, vocabulary]) after ``inputs``: its processors
        (which see its tokens and its input), its logprobs, its sampler."""
        contexts = []
        if any(r.processors for r in rows):
            processed = []
            for e, r in enumerate(rows):
                row_logits = logits[e : e + 1]
                if r.processors:
                    context = r.context.update_and_fetch(inputs[e : e + 1])
                    contexts.append(context)
                    for processor in r.processors:
                        row_logits = processor(context, row_logits)
                processed.append(row_logits)
            logits = mx.concatenate(processed, axis=0)
        logprobs = logits - mx.logsumexp(logits, axis=-1, keepdims=True)
        samplers = [r.sampler for r in rows]
        if all(s is samplers[0] for s in samplers):  # one call when the batch shares a sampler
            sampled = samplers[0](logprobs)
        else:
            sampled = mx.concatenate([s(logprobs[e : e + 1]) for e, s in enumerate(samplers)], axis=0)
        return sampled, logprobs, contexts

    def _hand_out(self, stepped: Stepped) -> list[Output]:
        """Each row's tokens, up to the first that ends it; the ended rows leave with their KV cache."""
        outputs, keep = [], []
        for i, (row, tokens, logprobs) in enumerate(zip(self.rows, stepped.tokens, stepped.logprobs)):
            row.tokens += tokens  # all of them are in its KV cache now
            finish, n = None, 0
            for token in tokens:
                n += 1
                row.produced += 1
                if row.produced >= row.max_tokens:
                    finish = "length"
                if token in self.stop_tokens:
                    finish = "stop"
                if finish is not None:
                    break
            output = Output(row.uid, tokens[:n], logprobs[:n], finish)
            if finish is None:
                keep.append(i)
                if self.speculator is not None:
                    self.speculator.extend(row, tokens)
            else:
                output.all_tokens, output.prompt_cache = self.extract(i, unused=len(tokens) - n)
            outputs.append(output)
        if len(keep) < len(self.rows):
            self.filter(keep)
        return outputs


def _merge(caches: list[list]) -> list:
    """The rows' caches as one batch cache per layer (mlx-lm's merge for each cache type)."""
    return [caches[0][i].merge([c[i] for c in caches]) for i in range(len(caches[0]))]

"""Sampling: the settings a request generates with, and the mlx-lm samplers and logits processors for them.

``resolve`` fills every field once, at submit: the request's value, else the model's default (config
file), else the server's (flags), else the built-in one. Everything after reads the result only.
"""

from __future__ import annotations

import secrets
from dataclasses import fields, replace
from typing import TYPE_CHECKING, Callable

import mlx.core as mx
from mlx_lm.sample_utils import greedy_sampler, make_logits_processors, make_sampler

from mlxcli.core.request import Sampling

if TYPE_CHECKING:
    from mlxcli.engine.job import Job
    from mlxcli.engine.loading import LoadedModel

Sampler = Callable[[mx.array], mx.array]
_NAMES = [f.name for f in fields(Sampling)]


def resolve(*layers: Sampling) -> Sampling:
    """The first layer, with each field it leaves unset taken from the next layer that sets it."""
    first, *rest = layers
    values = {}
    for name in _NAMES:
        if getattr(first, name) is None:
            values[name] = next((getattr(s, name) for s in rest if getattr(s, name) is not None), None)
    return replace(first, **{k: v for k, v in values.items() if v is not None})


class Samplers:
    """Samplers for one model, shared between requests with equal settings.

    mlx-lm samples a whole batch in one call when its rows share one sampler object.
    A request with a ``seed`` gets a sampler of its own that draws from its own
    random key, so its answer does not depend on what else runs.
    """

    MAX_KINDS = 64  # distinct settings kept; clients choose them freely
    fallback = staticmethod(greedy_sampler)  # for rows without a sampler of their own (mlx-lm's default)

    def __init__(self, model: "LoadedModel", stop_tokens: frozenset[int]):
        self._vocab = model.config.get("vocab_size") or len(model.tokenizer)
        self._eos = sorted(stop_tokens)
        self._made: dict[tuple, Sampler] = {}

    def sampler(self, job: "Job") -> Sampler:
        s = job.sampling  # resolved: temperature and top_p are set
        key = (
            s.temperature,
            s.top_p if 0 < s.top_p < 1 else 0.0,
            s.min_p or 0.0,
            # 0 (off) when top_k keeps every token anyway: mlx-lm refuses k >= the vocabulary size.
            s.top_k if s.top_k and s.top_k < self._vocab else 0,
        )
        if s.seed is not None and s.temperature > 0:
            return Seeded(_make(key), s.seed)
        if key not in self._made:
            if len(self._made) >= self.MAX_KINDS:
                self._made.clear()
            self._made[key] = _make(key)
        return self._made[key]

    def processors(self, job: "Job") -> list:
        s = job.sampling
        processors = make_logits_processors(
            # ignore_eos: end-of-sequence made unreachable, so a benchmark gets exactly max_tokens
            # (unless a constraint decides where the answer ends).
            logit_bias=dict.fromkeys(self._eos, -float("inf")) if s.ignore_eos and job.constraint is None else None,
            repetition_penalty=s.repetition_penalty,
            presence_penalty=s.presence_penalty,
            frequency_penalty=s.frequency_penalty,
        )
        # Last: the penalties reshape what the grammar allows, never let back what it forbids.
        return processors + [job.constraint] if job.constraint is not None else processors


def _make(key: tuple) -> Sampler:
    temperature, top_p, min_p, top_k = key
    return make_sampler(temp=temperature, top_p=top_p, min_p=min_p, top_k=top_k)


class Seeded:
    """``sampler`` (mlx-lm's own chain, which draws from MLX's global random state) with draws that
    depend only on ``seed`` and the draw's position: the global state is seeded for each draw, then
    re-seeded at random so that unseeded requests stay independent. The key is read when the draw's
    graph is built, so the re-seeding does not reach it. ``rewind`` takes back draws a speculating step
    made for positions it did not keep, so a seeded answer is the same with speculation or without."""

    def __init__(self, sampler: Sampler, seed: int):
        self._sampler = sampler
        self._seed = seed
        self._draws = 0

    def __call__(self, logprobs: mx.array) -> mx.array:
        mx.random.seed((self._seed + self._draws * _GOLDEN) % 2**64)
        self._draws += 1
        try:
            return self._sampler(logprobs)
        finally:
            mx.random.seed(secrets.randbits(64))

    def rewind(self, n: int) -> None:
        self._draws -= n


_GOLDEN = 0x9E3779B97F4A7C15  # an odd step (2^64 / golden ratio): distinct seeds for every draw

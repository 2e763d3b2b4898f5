"""Prompts of an exact token count, measured on the rendered chat prompt with the real tokenizer."""

from __future__ import annotations

import random

import pytest

from mlxcli.bench.prompts import PromptSet, build_prompt, shortest
from mlxcli.core.request import ChatRequest
from mlxcli.engine.tokens import PromptCounter


@pytest.fixture(scope="module")
def counter(tokenizer_dir):
    return PromptCounter(tokenizer_dir)


@pytest.mark.parametrize("tokens", [60, 61, 128, 333, 1024])
def test_rendered_prompt_has_exactly_the_asked_tokens(counter, tokens):
    for seed in range(4):
        messages = build_prompt(counter, tokens, seed=seed)
        assert [m.role for m in messages] == ["user"]
        assert counter(ChatRequest(messages=messages)) == tokens


def test_every_seed_reaches_every_length(counter):
    """Fresh random seeds each run (as `mlxcli bench` draws them), plus seeds that once failed."""
    least = shortest(counter)
    assert {shortest(counter, s) for s in (0, 7, 42, 123_456, 1_999_999)} == {least}  # whatever the seed
    rng = random.Random()
    seeds = [rng.randrange(2_000_000) for _ in range(250)] + list(range(20)) + [1417717, 1479471, 1207661, 1537683]
    lengths = [least, least + 1, least + 2, least + 3, 60, 61, 64, 100, 128]
    failed = []
    for seed in seeds:
        for tokens in lengths:
            try:
                built = counter(ChatRequest(messages=build_prompt(counter, tokens, seed=seed)))
            except ValueError as exc:
                built = str(exc)
            if built != tokens:
                failed.append((seed, tokens, built))
    assert not failed, failed[:10]


def test_prompts_differ_from_their_first_words(counter):
    texts = [build_prompt(counter, 200, seed=s)[0].content for s in range(5)]
    assert len({t[:40] for t in texts}) == 5  # no shared prefix for a prompt cache to reuse
    assert all("Continue this story" in t for t in texts)  # asks for a long answer


def test_too_short_is_a_clear_error(counter):
    with pytest.raises(ValueError, match=f"too short: this model's shortest benchmark prompt has {shortest(counter)}"):
        build_prompt(counter, shortest(counter) - 1, seed=9)


def test_counter_matches_the_engine(counter, scripted_engine):
    engine = scripted_engine(lambda prompt: "ok")
    request = ChatRequest(messages=build_prompt(counter, 150, seed=3))
    assert len(engine.render(request).tokens) == 150


def test_prompt_set_builds_each_prompt_once(counter):
    calls = []

    def counting(request):
        calls.append(1)
        return counter(request)

    prompts = PromptSet(counting)
    first = prompts.get(100, 1)
    n = len(calls)
    assert prompts.get(100, 1) is first and len(calls) == n
    assert prompts.get(100, 2) != first

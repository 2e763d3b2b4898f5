"""Speculative decoding's parts on their own: the KV cache whose rows drop their own positions (checked
against each row computed alone, with a tiny random llama), prompt lookup, and the adaptive depth."""

from __future__ import annotations

import mlx.core as mx
import numpy as np
import pytest
from mlx_lm.models.cache import make_prompt_cache

from mlxcli.engine.loading import load
from mlxcli.engine.speculation import rowcache
from mlxcli.engine.speculation.depth import MAX_WAIT, PROBE, Depth, StepCost
from mlxcli.engine.speculation.lookup import PromptLookup

TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    return load("tiny", tiny_model_dir).model


def _alone(model, tokens: list[int]) -> tuple[mx.array, list]:
    """The next token's logits after ``tokens``, read by a cache of their own."""
    cache = make_prompt_cache(model)
    logits = model(mx.array(tokens)[None], cache=cache)[0, -1]
    return logits, cache


def _rows(model, prompts: list[list[int]]) -> list[rowcache.RowKVCache]:
    caches = []
    for prompt in prompts:
        cache = make_prompt_cache(model)
        model(mx.array(prompt)[None], cache=cache)
        caches.append(cache)
    return rowcache.merge(caches)


def test_each_row_drops_its_own_last_positions(tiny):
    """Three rows of different lengths each feed 4 tokens and keep 1, 4 and 2 of them: the next token's
    logits of each row are those of its kept tokens read alone, and so is its extracted cache."""
    prompts = [[11, 12, 13, 14, 15], [21, 22], [31, 32, 33, 34, 35, 36, 37, 38]]
    fed = [[41, 42, 43, 44], [51, 52, 53, 54], [61, 62, 63, 64]]
    kept = [1, 4, 2]
    batch = _rows(tiny, prompts)
    tiny(mx.array(fed), cache=batch)
    for c in batch:
        c.drop([4 - k for k in kept])
    nxt = [71, 72, 73]
    logits = tiny(mx.array(nxt)[:, None], cache=batch)[:, -1]
    for i, (prompt, f, k, n) in enumerate(zip(prompts, fed, kept, nxt)):
        expected, alone = _alone(tiny, prompt + f[:k] + [n])
        assert mx.allclose(logits[i], expected, atol=TOLERANCE).item(), f"row {i}"
        extracted = [c.extract(i) for c in batch]
        assert extracted[0].offset == len(prompt) + k + 1
        assert np.allclose(np.array(extracted[0].keys), np.array(alone[0].keys[..., : alone[0].offset, :]), atol=TOLERANCE)


def test_rows_with_holes_survive_leaving_and_joining(tiny):
    """Drops, then a row leaves and another joins, then more drops: every row still reads as alone."""
    prompts = [[11, 12, 13], [21, 22, 23, 24, 25, 26]]
    batch = _rows(tiny, prompts)
    tiny(mx.array([[1, 2, 3], [4, 5, 6]]), cache=batch)
    for c in batch:
        c.drop([2, 0])
    histories = [prompts[0] + [1], prompts[1] + [4, 5, 6]]
    for c in batch:
        c.filter([1])  # the first row leaves
    histories = histories[1:]
    joining = _rows(tiny, [[31, 32]])
    for mine, theirs in zip(batch, joining):
        mine.extend(theirs)
    histories.append([31, 32])
    tiny(mx.array([[7, 8], [9, 10]]), cache=batch)
    for c in batch:
        c.drop([1, 0])
    histories = [histories[0] + [7], histories[1] + [9, 10]]
    logits = tiny(mx.array([[90], [91]]), cache=batch)[:, -1]
    for i, (history, n) in enumerate(zip(histories, [90, 91])):
        expected, _ = _alone(tiny, history + [n])
        assert mx.allclose(logits[i], expected, atol=TOLERANCE).item(), f"row {i}"


def test_prompt_lookup_follows_its_source_and_finds_it_again_after_a_change():
    source = list(range(100, 140))
    lookup = PromptLookup([1, 2, 3] + source + [4, 5] + source[:5])
    assert lookup.propose(6) == source[5:11]  # the answer so far repeats the source's start
    lookup.extend(source[5:8])
    assert lookup.propose(3) == source[8:11]  # still following, no new search
    lookup.extend([999])  # the answer changes a token
    assert lookup.propose(4) == []  # nothing before ends like this
    lookup.extend(source[9:12])  # ... and goes on as the source did after it
    assert lookup.propose(2) == source[12:14]


def test_prompt_lookup_repeats_a_repeating_stretch_beyond_its_end():
    assert PromptLookup([1, 2, 3, 1, 2, 3, 1, 2]).propose(5) == [3, 1, 2, 3, 1]
    assert PromptLookup([9, 5, 7, 7, 7]).propose(4) == [7, 7, 7, 7]


def test_prompt_lookup_prefers_the_longest_match():
    lookup = PromptLookup([2, 8, 1, 5, 5, 7, 8, 1, 9, 9, 3, 0, 2, 8, 1])
    assert lookup.propose(2) == [5, 5]  # after "2 8 1", though the latest "8 1" went on with 9


def test_a_row_whose_proposals_keep_failing_sits_out_longer_and_longer():
    depth, cost = Depth(), StepCost(plain=0.01, overhead=0.2, slope=0.01)
    waits = []
    for _ in range(8):
        while not depth.ready():
            pass
        k = depth.choose(8, cost, 8)
        depth.settle(max(k, 1), 0)
        waits.append(depth.wait)
    assert waits[:3] == [0, 2, 4] and waits[-1] == MAX_WAIT
    assert depth.choose(8, cost, 8) == 0  # its acceptance says nothing will come true


def test_depth_grows_with_acceptance_and_shrinks_with_cost():
    cheap, dear = StepCost(plain=0.01, overhead=0.05, slope=0.01), StepCost(plain=0.01, overhead=0.05, slope=2.0)
    depth = Depth()
    for _ in range(10):
        depth.settle(8, 8)
    assert depth.choose(8, cheap, 8) == 8
    assert depth.choose(8, cheap, 5) == 5
    assert depth.choose(3, cheap, 8) == 3
    assert depth.choose(8, dear, 8) == 0


def test_a_row_that_keeps_declining_tries_anyway():
    depth, dear = Depth(), StepCost(plain=0.01, overhead=5.0, slope=5.0)
    chosen = [depth.choose(4, dear, 8) for _ in range(PROBE)]
    assert chosen[:-1] == [0] * (PROBE - 1) and chosen[-1] == 4


def test_the_step_cost_learns_from_the_steps_it_measures():
    cost = StepCost()
    cost.observe_plain(0.010)
    for _ in range(40):
        cost.observe_speculating(0.030, 8)  # a wide step costs three plain ones
    assert cost.relative(8) == pytest.approx(3.0, rel=0.05)


# ---- the decode batch verifying given proposals (a tiny random llama) -------------------------------------


class GivenPlans:
    """A speculator whose proposals the test gives: ``steps[n]`` (for the batch's n-th step, else a plain
    step) maps a row's uid to (its depth, the index of its first wrong proposal or None). Its proposals are
    the row's own next tokens (``reference``, from a plain run), wrong from that index on."""

    def __init__(self, reference: dict[int, list[int]], steps: dict[int, dict[int, tuple[int, int | None]]]):
        self.reference, self.steps, self.step = reference, steps, 0
        self.accepted: list[list[int]] = []

    def add(self, rows):
        pass

    def filter(self, keep):
        pass

    def extend(self, row, tokens):
        pass

    def plan(self, batch):
        from mlxcli.engine.speculation.speculator import Plan

        wanted = self.steps.get(self.step, {})
        self.step += 1
        if not wanted:
            return None
        depths, columns = [], []
        for row in batch.rows:
            k, wrong = wanted.get(row.uid, (0, None))
            ahead = self.reference[row.uid][row.produced + 1 : row.produced + 1 + k]  # after its pending token
            if wrong is not None:
                ahead = ahead[:wrong] + [(t + 1) % 1000 + 7 for t in ahead[wrong:]]
            depths.append(k)
            columns.append(ahead)
        widest = max(depths)
        return Plan(depths, mx.array([c + [0] * (widest - len(c)) for c in columns], dtype=mx.int32))

    def settle(self, batch, plan, accepted, handed_out):
        self.accepted.append(accepted)

    def observe(self, seconds, plan):
        pass


PROMPTS = [[11, 12, 13, 14, 15], [21, 22], [31, 32, 33, 34, 35, 36, 37, 38]]


def _decode(model, steps: int, speculator=None, max_tokens: int = 100):
    """Each row's tokens and their logprobs (of the token handed out), and the batch's finished outputs."""
    from mlxcli.engine.decode import DecodeBatch, Row

    caches = []
    for prompt in PROMPTS:
        cache = make_prompt_cache(model)
        model(mx.array(prompt[:-1])[None], cache=cache)
        caches.append(cache)
    batch = DecodeBatch(model, frozenset(), speculator)
    greedy = lambda logprobs: mx.argmax(logprobs, axis=-1)
    batch.add([Row(i, list(p), greedy, (), max_tokens) for i, p in enumerate(PROMPTS)], caches)
    tokens = {i: [] for i in range(len(PROMPTS))}
    logprobs = {i: [] for i in range(len(PROMPTS))}
    finished = {}
    for _ in range(steps):
        for out in batch.step():
            tokens[out.uid] += out.tokens
            logprobs[out.uid] += [lp[t].item() for lp, t in zip(out.logprobs, out.tokens)]
            if out.finish_reason is not None:
                finished[out.uid] = out
    return tokens, logprobs, finished


def test_each_row_verifies_its_own_proposals_and_keeps_its_own_prefix(tiny):
    """One step verifies a row with no proposal beside rows with 3 (all right, and wrong from the second);
    a later one other depths again. Each row's answer, and each token's logprob, is the plain path's: every
    row's cache was rewound by its own amount."""
    reference, reference_logprobs, _ = _decode(tiny, 40)
    plans = GivenPlans(reference, {
        1: {1: (3, None), 2: (3, 1)},          # row 0: k = 0 beside them
        3: {0: (2, 0), 2: (4, None)},          # row 0 misses at once; row 1 feeds its token alone
        4: {0: (1, None), 1: (5, 2), 2: (2, None)},
    })
    tokens, logprobs, _ = _decode(tiny, 24, plans)
    assert plans.accepted == [[0, 3, 1], [0, 0, 4], [1, 2, 2]]
    for uid, row in tokens.items():
        assert row == reference[uid][: len(row)]
        assert np.allclose(logprobs[uid], reference_logprobs[uid][: len(row)], atol=TOLERANCE), f"row {uid}"
    assert [len(tokens[uid]) for uid in range(3)] == [24 + 1, 24 + 3 + 2, 24 + 1 + 4 + 2]


def test_max_tokens_inside_an_accepted_run_ends_the_row_there(tiny):
    """A row whose limit falls inside its accepted proposals hands out up to its limit, and leaves with a KV
    cache of exactly the tokens it handed out (what the prompt cache keeps)."""
    reference, _, _ = _decode(tiny, 12)
    plans = GivenPlans(reference, {1: {0: (6, None), 1: (6, None), 2: (2, None)}})
    tokens, _, finished = _decode(tiny, 3, plans, max_tokens=5)
    assert plans.accepted == [[6, 6, 2]]
    assert tokens[0] == reference[0][:5] and tokens[1] == reference[1][:5] and finished[0].finish_reason == "length"
    for uid in (0, 1):
        out = finished[uid]
        assert out.all_tokens == PROMPTS[uid] + reference[uid][:5]
        assert all(c.offset == len(out.all_tokens) for c in out.prompt_cache)
    assert tokens[2] == reference[2][:5] and finished[2].finish_reason == "length"

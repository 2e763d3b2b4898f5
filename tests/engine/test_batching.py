"""Continuous batching and the prompt cache.

Output checks run the real default model (greedy SmolLM2-135M answers differ from prompt to
prompt; a tiny random model repeats one token, so batching mistakes would go unseen); the
budget and scheduling checks run a tiny random llama.
"""

from __future__ import annotations

import threading
import time

import pytest

from mlxcli.core.collect import collect
from mlxcli.core.events import TextDelta
from mlxcli.core.request import ChatRequest, Message, Sampling
from mlxcli.engine.engine import EngineSettings, MlxEngine
from mlxcli.engine.kinds import served_model
from mlxcli.engine.prompt_cache import PromptCache

PROMPTS = [
    "Tell me about the sea.",
    "What is two plus two?",
    "Write a very long story about a dragon who learns to bake bread in a small village by the mountains.",
    "Hi",
    "List three colors.",
    "Why is the sky blue? Explain it to a child, then to a physicist.",
]


def ask(text: str, max_tokens: int = 24, **sampling) -> ChatRequest:
    sampling = {"temperature": 0.0, "max_tokens": max_tokens, "ignore_eos": True, **sampling}
    return ChatRequest(messages=[Message("user", text)], sampling=Sampling(**sampling))


def _serving(run_engine, model_dir):
    """Factory: ``make(**settings)``, an engine serving the model in ``model_dir``."""

    def make(**settings) -> MlxEngine:
        settings = EngineSettings(**settings)
        return run_engine([served_model(model_dir.name, model_dir, settings)], settings)

    return make


@pytest.fixture
def tiny_engine(run_engine, tiny_model_dir):
    """Factory: an engine serving the tiny random model."""
    return _serving(run_engine, tiny_model_dir)


@pytest.fixture
def real_engine(run_engine, default_model_dir):
    """Factory: an engine serving the default model."""
    return _serving(run_engine, default_model_dir)


def run_together(engine: MlxEngine, requests: list[ChatRequest]) -> tuple[list, int]:
    """Submit every request at once; (their results, the most requests seen generating together)."""
    generations = [engine.submit(r) for r in requests]
    results: list = [None] * len(requests)
    peak = 0

    def read(i: int) -> None:
        results[i] = collect(generations[i])

    readers = [threading.Thread(target=read, args=(i,)) for i in range(len(requests))]
    for t in readers:
        t.start()
    while any(t.is_alive() for t in readers):
        peak = max(peak, engine.stats()["active_requests"])
        time.sleep(0.001)
    return results, peak


@pytest.mark.default_model
def test_batched_greedy_output_equals_unbatched(real_engine):
    engine = real_engine(prompt_cache_bytes=0)
    requests = [ask(p, max_tokens=16 + 4 * i) for i, p in enumerate(PROMPTS)]
    alone = [collect(engine.submit(r)) for r in requests]
    together, peak = run_together(engine, requests)
    assert peak >= 3, "the requests did not run as one batch"
    assert [r.text for r in together] == [r.text for r in alone]
    assert [r.finish.usage.completion_tokens for r in together] == [16 + 4 * i for i in range(len(PROMPTS))]
    assert all(r.finish.reason == "length" for r in together)


@pytest.mark.default_model
def test_each_request_keeps_its_own_stop_strings_and_limits(real_engine):
    engine = real_engine(prompt_cache_bytes=0)
    free = [collect(engine.submit(ask(p, max_tokens=20))) for p in PROMPTS[:3]]
    stop = free[1].text[5:9]  # somewhere inside request 1's answer only
    assert stop and stop not in free[0].text[:-len(stop)] and stop not in free[2].text
    requests = [ask(PROMPTS[0], max_tokens=20), ask(PROMPTS[1], max_tokens=20, stop=[stop]), ask(PROMPTS[2], max_tokens=7)]
    together, _ = run_together(engine, requests)
    assert together[0].text == free[0].text
    assert together[1].text == free[1].text[: free[1].text.index(stop)] and together[1].finish.stop_sequence == stop
    assert together[2].finish.usage.completion_tokens == 7 and free[2].text.startswith(together[2].text)


@pytest.mark.default_model
def test_cancelling_one_request_leaves_the_others_unaffected(real_engine):
    engine = real_engine(prompt_cache_bytes=0)
    alone = [collect(engine.submit(ask(p, max_tokens=60))) for p in PROMPTS[:3]]
    generations = [engine.submit(ask(p, max_tokens=60)) for p in PROMPTS[:3]]
    victim = generations[1]
    for event in victim:  # read a few tokens, then hang up
        if isinstance(event, TextDelta) and victim.job.generated_tokens >= 3:
            break
    victim.cancel()
    survivors = [collect(generations[0]), collect(generations[2])]
    assert [r.text for r in survivors] == [alone[0].text, alone[2].text]
    assert victim.job.generated_tokens < 60
    assert engine.stats()["active_requests"] == 0


def conversation(*turns: str) -> list[Message]:
    roles = ["user", "assistant"]
    return [Message(roles[i % 2], text) for i, text in enumerate(turns)]


@pytest.mark.default_model
@pytest.mark.parametrize("kv_bits", [None, 8], ids=["batched", "solo-kv8"])
def test_a_follow_up_turn_reuses_the_cached_prefix_and_answers_the_same(real_engine, kv_bits):
    """Under --kv-bits requests run alone: through the same prompt cache."""
    cached_engine = real_engine(kv_bits=kv_bits)
    cold_engine = real_engine(prompt_cache_bytes=0, kv_bits=kv_bits)
    first = ChatRequest(messages=conversation(PROMPTS[2]), sampling=Sampling(temperature=0.0, max_tokens=12))
    answer = collect(cached_engine.submit(first))
    assert answer.finish.usage.cached_tokens == 0
    follow_up = ChatRequest(
        messages=conversation(PROMPTS[2], answer.text, "And then?"),
        # The penalty looks back at prompt tokens, cached or not: the answers must still agree.
        sampling=Sampling(temperature=0.0, max_tokens=12, repetition_penalty=1.3),
    )
    hit = collect(cached_engine.submit(follow_up))
    miss = collect(cold_engine.submit(follow_up))
    first_prompt = len(cached_engine.render(first).tokens)
    assert first_prompt <= hit.finish.usage.cached_tokens < hit.finish.usage.prompt_tokens
    assert miss.finish.usage.cached_tokens == 0
    assert hit.text == miss.text


@pytest.mark.default_model
@pytest.mark.parametrize("kv_bits", [None, 8], ids=["batched", "solo-kv8"])
def test_the_same_prompt_twice_computes_only_its_last_token(real_engine, kv_bits):
    engine = real_engine(kv_bits=kv_bits)
    # The penalty looks back at the prompt's tokens, though only the last one is computed.
    request = ask("Repeat this word five times: banana", max_tokens=16, repetition_penalty=2.0)
    first, second = collect(engine.submit(request)), collect(engine.submit(request))
    assert second.finish.usage.cached_tokens == second.finish.usage.prompt_tokens - 1
    assert second.text == first.text


def test_the_prompt_cache_never_exceeds_its_byte_budget(tiny_engine):
    probe = tiny_engine()
    collect(probe.submit(ask(PROMPTS[2], max_tokens=8)))
    one_entry = probe.prompt_cache.nbytes
    assert one_entry > 0
    budget = int(one_entry * 2.5)
    engine = tiny_engine(prompt_cache_bytes=budget)
    for i in range(8):
        collect(engine.submit(ask(f"{PROMPTS[2]} Variation {i}.", max_tokens=8)))
        assert 0 < engine.prompt_cache.nbytes <= budget
    assert len(engine.prompt_cache) < 8  # the oldest were evicted


@pytest.mark.default_model
def test_a_seed_gives_the_same_answer_alone_or_batched(real_engine):
    engine = real_engine(prompt_cache_bytes=0)
    seeded = [ask(PROMPTS[0], max_tokens=12, temperature=1.5, seed=seed) for seed in (7, 7, 8)]
    alone = collect(engine.submit(seeded[0]))
    together, peak = run_together(engine, seeded + [ask(PROMPTS[1], max_tokens=12, temperature=1.5)])
    assert peak >= 3, "the requests did not run as one batch"
    assert together[0].text == together[1].text == alone.text
    assert together[2].text != alone.text  # another seed, another draw


def test_quantized_kv_requests_run_alone_and_answer(tiny_engine):
    quantized = tiny_engine(kv_bits=8, prompt_cache_bytes=0)
    results, peak = run_together(quantized, [ask(p, max_tokens=12) for p in PROMPTS[:2]])
    assert peak == 1
    assert all(r.finish.usage.completion_tokens == 12 and r.text for r in results)


def test_prompt_cache_unit_budget_and_reuse():
    import mlx.core as mx
    from mlx_lm.models.cache import KVCache

    def cache_of(n: int) -> list:
        c = KVCache()
        keys = mx.zeros((1, 2, n, 8))
        c.update_and_fetch(keys, keys)
        return [c]

    per_token = cache_of(1)[0].nbytes  # KVCache allocates in steps: measure one entry
    cache = PromptCache(max_bytes=per_token * 2, max_entries=10)
    cache.store("m", [1, 2, 3], cache_of(3))
    reuse = cache.fetch("m", [1, 2, 3, 4, 5])
    assert reuse.cached == 3 and reuse.rest == [4, 5]
    assert cache.fetch("other", [1, 2, 3, 4]).cached == 0
    exact = cache.fetch("m", [1, 2, 3])
    assert exact.cached == 2 and exact.rest == [3]
    cache.store("m", [7, 8], cache_of(2))
    cache.store("m", [9, 9], cache_of(2))
    assert cache.nbytes <= per_token * 2 and cache.fetch("m", [1, 2, 3, 4]).cached == 0
    assert PromptCache(0, 10).fetch("m", [1, 2, 3]).cached == 0

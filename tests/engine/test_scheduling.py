"""The batch's scheduling policy (engine/schedule.py): the decisions alone, then the engine under it with
the scripted model — orders of events, never how long anything took."""

from __future__ import annotations

import threading
from dataclasses import dataclass

import pytest

from mlxcli.core.collect import collect
from mlxcli.core.events import Finish, TextDelta
from mlxcli.core.request import ChatRequest, Message, Sampling
from mlxcli.engine.engine import EngineSettings
from mlxcli.engine.schedule import AGE_STEPS, MIN_CHUNK, Policy, order
from tests.support.http import wait_for
from tests.support.models import scripted_of


@dataclass(eq=False)
class Prompt:
    remaining: int
    waited: int = 0
    seconds_per_token: float | None = None


def test_the_shortest_remaining_prompt_is_read_first():
    long, short, middle = Prompt(5000), Prompt(40), Prompt(700)
    assert order([long, short, middle]) == [short, middle, long]


def test_a_prompt_that_waits_long_enough_goes_first_whatever_its_length():
    long, short = Prompt(5000), Prompt(40)
    steps = next(n for n in range(100_000) if order([Prompt(5000, waited=n), short])[0] is not short)
    assert steps < 200 * AGE_STEPS  # ageing: a long prompt is never starved by a stream of short ones
    assert order([long, short])[0] is short


def measured(decode: float = 0.05, per_token: float = 0.001, **knobs) -> Policy:
    policy = Policy(**knobs)
    policy.observe_decode(decode)
    policy.token_seconds = per_token
    return policy


def test_slices_follow_the_measured_decode_step_and_are_bounded():
    policy = measured(prefill_ratio=10, young_ratio=1, max_step_seconds=1.0, max_chunk=512)
    prompt = Prompt(5000)
    [(chosen, tokens)] = policy.plan([prompt], decoding=1, young=False)
    assert chosen is prompt and tokens == 500  # 10 × 50 ms of reading at 1 ms a token
    policy.observe_read(prompt, tokens, 0.5)  # it took what it was planned to take
    [(_, young)] = policy.plan([prompt], decoding=1, young=True)
    assert young == 50  # a young answer decoding: 1 × 50 ms
    policy.observe_read(prompt, young, 0.05)
    for _ in range(20):  # eight answers: a slow decode step
        policy.observe_decode(0.4)
    slow = Prompt(5000, seconds_per_token=0.002)  # its own cost: a long context
    [(_, tokens)] = policy.plan([slow], decoding=8, young=False)
    assert tokens == pytest.approx(300, abs=1)  # 600 ms: the step stays within max_step_seconds


def test_reading_gets_its_share_of_the_time_whatever_a_slice_costs():
    """The credit pays for the time slices really take: a forward pass that costs more than planned is
    paid back by the next steps, one too small to be worth it waits for more credit."""
    policy = measured(decode=0.01, per_token=0.001, prefill_ratio=1, young_ratio=1)
    prompt, read_time, steps = Prompt(10**9), 0.0, 2000
    for _ in range(steps):
        for _, tokens in policy.plan([prompt], decoding=1, young=False):
            cost = 0.02 + tokens * 0.001  # each forward pass has a fixed cost the estimate does not know
            policy.observe_read(prompt, tokens, cost)
            read_time += cost
    assert read_time / (steps * 0.01) == pytest.approx(1.0, rel=0.05)  # reading took one decode step's worth per step


def test_reading_always_progresses():
    policy = measured(prefill_ratio=0, young_ratio=0)
    reads = 0
    for _ in range(1000):
        for prompt, tokens in policy.plan([Prompt(5000)], decoding=4, young=True):
            policy.observe_read(prompt, tokens, tokens * 0.001)
            reads += tokens
    assert reads >= MIN_CHUNK


def test_a_prompt_whose_slices_were_slow_is_still_read():
    """A machine so busy that 16 tokens took longer than a whole step: the prompt still makes progress,
    with streams decoding and without."""
    policy = measured(decode=0.05, per_token=0.001, max_step_seconds=0.5)
    prompt = Prompt(5000)
    policy.observe_read(prompt, 3, 3.0)  # one second a token
    assert policy.plan([prompt], decoding=0, young=False) == [(prompt, MIN_CHUNK)]
    steps = next(n for n in range(1, 1000) if policy.plan([prompt], decoding=2, young=True))
    assert steps < 1000


def test_a_slice_with_time_left_reads_the_next_prompts_too():
    policy = measured(per_token=0.00001, max_step_seconds=1.0)  # nothing decoding: a second of reading
    a, b, c = Prompt(30), Prompt(40), Prompt(5000)
    assert policy.plan([c, b, a], decoding=0, young=False) == [(a, 30), (b, 40), (c, 512)]


def test_distributed_ranks_decide_without_a_clock():
    policy = measured(decode=100.0, per_token=100.0, max_chunk=64, fixed=True)  # whatever this rank measured
    a, b = Prompt(30), Prompt(5000)
    assert policy.plan([b, a], decoding=3, young=True) == [(a, 30)]


# ---- the engine under the policy (scripted model, slices of 16 tokens) ------------------------------


def ask(text: str, **sampling) -> ChatRequest:
    return ChatRequest(messages=[Message("user", text)], sampling=Sampling(**sampling))


LONG = "lorem ipsum dolor sit amet " * 150  # ~1500 tokens: about a hundred slices of 16
WINDOW = 4096


def first_token_order(engine, requests: dict[str, ChatRequest], after: dict[str, str] | None = None) -> list[str]:
    """The names of ``requests`` in the order their first token came; ``after[b] = a``: ``b`` is submitted
    once ``a``'s prompt is being read."""
    seen: list[str] = []
    failures: list[BaseException] = []
    lock = threading.Lock()

    def run(name: str) -> None:
        try:
            for event in engine.submit(requests[name]):
                if isinstance(event, (TextDelta, Finish)):
                    with lock:
                        seen.append(name)
                    break
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            failures.append(exc)

    threads = {}
    for name in requests:
        if after and name in after:
            model = scripted_of(engine)
            assert wait_for(lambda: model.calls > 2, timeout=60), "the long prompt never started"
        threads[name] = threading.Thread(target=run, args=(name,))
        threads[name].start()
    for t in threads.values():
        t.join(timeout=300)
    assert not failures, failures
    return seen


def test_a_short_answer_is_complete_before_a_long_prompt_is_read(scripted_engine):
    """A model whose forward pass costs 2 ms a token: the long prompt takes seconds to read. Each step
    reading a whole --prefill-step-size chunk of it beside a decode step (mlx-lm's BatchGenerator) would
    read it in 12 steps, long before the short answer's 20 tokens were out."""
    answer = " ".join(f"w{i}" for i in range(20))
    settings = EngineSettings(temperature=0.0, prefill_step_size=512, max_step_seconds=0.25)
    engine = scripted_engine(lambda prompt: "done" if "lorem" in prompt else answer, settings, context_window=8192)
    scripted_of(engine).token_delay = 0.002
    ends: list[str] = []
    lock = threading.Lock()

    def run(name: str, request: ChatRequest, event_type: type) -> None:
        for event in engine.submit(request):
            if isinstance(event, event_type):
                with lock:
                    ends.append(name)
                break

    long = threading.Thread(target=run, args=("long's first token", ask(LONG * 4), TextDelta))
    long.start()
    assert wait_for(lambda: scripted_of(engine).calls > 2, timeout=60)
    run("short's last token", ask("Title, please"), Finish)
    long.join(timeout=300)
    assert ends == ["short's last token", "long's first token"]


def test_prompts_are_read_alone_never_padded_to_another(scripted_engine):
    engine = scripted_engine(lambda prompt: "done", EngineSettings(temperature=0.0, prefill_step_size=16), context_window=WINDOW)
    model = scripted_of(engine)
    shapes: list[tuple[int, int]] = []
    call = type(model).__call__

    def recording(self, inputs, cache=None, **kwargs):
        shapes.append(tuple(inputs.shape))
        return call(self, inputs, cache=cache, **kwargs)

    type(model).__call__ = recording
    try:
        first_token_order(engine, {"long": ask(LONG), "a": ask("Short one"), "b": ask("Another short one, a bit longer")},
                          after={"a": "long", "b": "long"})
    finally:
        type(model).__call__ = call
    reading = [s for s in shapes if s[1] > 1]
    assert reading and all(rows == 1 for rows, _ in reading)  # every prompt slice: one prompt alone
    assert any(rows > 1 for rows, length in shapes if length == 1)  # while the answers decode together


def test_a_fully_cached_follow_up_answers_before_a_long_prompt_is_read(scripted_engine):
    engine = scripted_engine(lambda prompt: "Sure.", EngineSettings(temperature=0.0, prefill_step_size=16), context_window=WINDOW)
    turn = ask("Fix the bug in main.py " * 20)
    first = collect(engine.submit(turn))
    assert first.finish.usage.cached_tokens == 0
    order_seen = first_token_order(engine, {"long": ask(LONG), "again": turn}, after={"again": "long"})
    assert order_seen == ["again", "long"]


def test_a_long_prompt_is_not_starved_by_short_requests_that_keep_coming(scripted_engine):
    engine = scripted_engine(lambda prompt: "ok", EngineSettings(temperature=0.0, prefill_step_size=16, max_batch=4), context_window=WINDOW)
    model = scripted_of(engine)
    long_done = threading.Event()

    def read_long() -> None:
        collect(engine.submit(ask(LONG, max_tokens=1)))
        long_done.set()

    thread = threading.Thread(target=read_long)
    thread.start()
    assert wait_for(lambda: model.calls > 2, timeout=60)
    shorts = 0
    while not long_done.is_set():  # two short requests at a time, without end
        pair = [threading.Thread(target=lambda: collect(engine.submit(ask(f"Short {shorts} " * 3, max_tokens=2)))) for _ in range(2)]
        for t in pair:
            t.start()
        for t in pair:
            t.join(timeout=120)
        shorts += 2
        assert shorts < 2000, "the long prompt was starved"
    thread.join(timeout=60)


@pytest.mark.parametrize("alone_first", [True, False])
def test_greedy_answers_do_not_depend_on_what_else_is_scheduled(tiny_model_dir, make_engine, alone_first):
    from mlxcli.engine.kinds import served_model

    engine = make_engine([served_model("tiny", tiny_model_dir, EngineSettings())], prefill_step_size=16, prompt_cache_bytes=0)
    request = ask("Write a list of fruits and their colours.", max_tokens=24)
    alone = collect(engine.submit(request)).text if alone_first else None
    results: dict[str, str] = {}

    def run(name: str, r: ChatRequest) -> None:
        results[name] = collect(engine.submit(r)).text

    threads = [threading.Thread(target=run, args=("long", ask(LONG[:1500], max_tokens=8))),
               threading.Thread(target=run, args=("mine", request)),
               threading.Thread(target=run, args=("other", ask("Say something else entirely.", max_tokens=16)))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    alone = alone if alone is not None else collect(engine.submit(request)).text
    assert results["mine"] == alone


def test_a_burst_of_short_prompts_is_read_at_the_full_share_beside_a_young_answer():
    """Young answers are protected from long prompts only: short prompts (one slice or less) that arrived
    together are read at the full share, so they join the decode batch together (4-8 clients at once)."""
    policy = measured(prefill_ratio=10, young_ratio=1, max_step_seconds=1.0, max_chunk=512)
    burst = [Prompt(128) for _ in range(3)]
    chosen = policy.plan(burst, decoding=1, young=True)
    assert sum(tokens for _, tokens in chosen) == 3 * 128  # 10 × 50 ms at 1 ms a token: all three
    long = Prompt(5000)
    [(_, tokens)] = measured(prefill_ratio=10, young_ratio=1, max_step_seconds=1.0, max_chunk=512).plan([long], decoding=1, young=True)
    assert tokens == 50  # a long prompt: the young share, 1 × 50 ms

"""The engine with the scripted model: exact text, stop sequences, limits, cancellation, faults."""

from __future__ import annotations

import threading

import pytest

from mlxcli.core.collect import collect
from mlxcli.core.errors import ContextLengthExceeded, EngineFailure, Overloaded
from mlxcli.core.events import Finish, TextDelta
from mlxcli.core.request import ChatRequest, Message, Sampling
from mlxcli.engine.engine import EngineSettings
from tests.support.http import wait_for


def ask(text: str = "Hi", **sampling) -> ChatRequest:
    return ChatRequest(messages=[Message("user", text)], sampling=Sampling(**sampling))


def test_reply_text_and_usage(scripted_engine):
    engine = scripted_engine(lambda prompt: "Hello there, friend.")
    request = ask("Say hello")
    result = collect(engine.submit(request))
    assert result.text == "Hello there, friend."
    assert result.finish.reason == "stop"
    assert result.finish.usage.prompt_tokens == len(engine.render(request).tokens)
    assert result.finish.usage.completion_tokens == len(engine.registry.default.tokenizer.encode("Hello there, friend.", add_special_tokens=False))


def test_model_sees_the_rendered_conversation(scripted_engine):
    seen = []
    engine = scripted_engine(lambda prompt: seen.append(prompt) or "ok")
    request = ChatRequest(messages=[Message("system", "Be brief."), Message("user", "What is 2+2?")])
    collect(engine.submit(request))
    assert seen == [engine.render(request).text]
    assert "Be brief." in seen[0] and "What is 2+2?" in seen[0]


def test_stop_sequence_cuts_text_and_reports_match(scripted_engine):
    engine = scripted_engine(lambda prompt: "alpha beta STOP gamma delta")
    result = collect(engine.submit(ask(stop=["STOP", "never"])))
    assert result.text == "alpha beta "
    assert result.finish.reason == "stop"
    assert result.finish.stop_sequence == "STOP"


def test_stop_sequence_spanning_tokens_is_never_leaked(scripted_engine):
    engine = scripted_engine(lambda prompt: "one two three four five")
    stop = "o thr"  # starts inside the token " two" and ends inside " three"
    gen = engine.submit(ask(stop=[stop]))
    deltas = [e.text for e in gen if isinstance(e, TextDelta)]
    assert "".join(deltas) == "one tw"
    assert all("thr" not in d for d in deltas)


def test_max_tokens_gives_length(scripted_engine):
    reply = "a b c d e f g h i j k l m n o p"
    engine = scripted_engine(lambda prompt: reply)
    tokens = engine.registry.default.tokenizer.encode(reply, add_special_tokens=False)
    result = collect(engine.submit(ask(max_tokens=3)))
    assert result.finish.reason == "length"
    assert result.finish.usage.completion_tokens == 3
    assert result.text == engine.registry.default.tokenizer.decode(tokens[:3])


def test_max_tokens_is_capped_by_context_window(scripted_engine):
    engine = scripted_engine(lambda prompt: "word " * 200, context_window=64)
    request = ask(max_tokens=10_000)
    room = 64 - len(engine.render(request).tokens)
    result = collect(engine.submit(request))
    assert result.finish.reason == "length"
    assert result.finish.usage.completion_tokens == room


def test_prompt_over_context_is_refused_before_prefill(scripted_engine):
    calls = []
    engine = scripted_engine(lambda prompt: calls.append(1) or "x", context_window=64)
    with pytest.raises(ContextLengthExceeded) as err:
        engine.submit(ask("lorem ipsum " * 100))
    assert err.value.context_window == 64 and err.value.prompt_tokens > 64
    assert calls == []


def test_cancel_stops_generation_and_engine_moves_on(scripted_engine):
    engine = scripted_engine(lambda prompt: "ok" if "second" in prompt else "tick " * 1000)
    gen = engine.submit(ask("first", max_tokens=1000))
    for _ in range(3):
        gen.next_event()
    gen.cancel()
    stopped_at = gen.job.generated_tokens
    assert wait_for(lambda: engine.stats()["active_requests"] == 0)  # the engine dropped it
    assert gen.job.generated_tokens <= stopped_at + 3  # within a few tokens
    assert collect(engine.submit(ask("second"))).text == "ok"


def blocking(reply: str = "done"):
    """A ``respond`` that blocks the engine thread on prompts saying "block" until ``release`` is set;
    ``started`` is set once it blocks."""
    started, release = threading.Event(), threading.Event()

    def respond(prompt):
        if "block" in prompt:
            started.set()
            release.wait(30)
        return reply

    return respond, started, release


def test_cancel_while_queued_removes_the_job(scripted_engine):
    respond, started, release = blocking()
    engine = scripted_engine(respond, EngineSettings(temperature=0.0, max_queue=1))
    first = engine.submit(ask("block"))
    assert started.wait(30)  # the engine thread is busy with it: what comes next waits in the queue
    queued = engine.submit(ask("queued"))
    assert engine.stats()["queue_depth"] == 1
    queued.cancel()
    assert engine.stats()["queue_depth"] == 0
    engine.submit(ask("fits now")).cancel()
    release.set()
    assert collect(first).text == "done"


def test_full_queue_refuses_at_once(scripted_engine):
    respond, started, release = blocking()
    engine = scripted_engine(respond, EngineSettings(temperature=0.0, max_queue=2))
    running = engine.submit(ask("block"))
    assert started.wait(30)
    waiting = [engine.submit(ask("b")), engine.submit(ask("c"))]
    with pytest.raises(Overloaded):  # raised by submit itself: a full queue never makes a caller wait
        engine.submit(ask("d"))
    release.set()
    for gen in [running, *waiting]:
        assert collect(gen).finish.reason == "stop"


def test_failure_inside_generation_fails_only_that_request(scripted_engine):
    def respond(prompt):
        if "explode" in prompt:
            raise RuntimeError("boom")
        return "fine"

    engine = scripted_engine(respond)
    with pytest.raises(EngineFailure, match="boom"):
        collect(engine.submit(ask("explode")))
    assert engine.alive
    assert collect(engine.submit(ask("again"))).text == "fine"


def test_events_end_with_one_finish(scripted_engine):
    engine = scripted_engine(lambda p: "short answer")
    events = list(engine.submit(ask()))
    assert isinstance(events[-1], Finish)
    assert sum(isinstance(e, Finish) for e in events) == 1
    assert events[-1].timings.prefill >= 0 and events[-1].timings.decode >= 0


def test_tiny_random_model_greedy_is_deterministic(tiny_model_dir):
    from mlxcli.engine.engine import MlxEngine

    engine = MlxEngine.from_path("tiny", tiny_model_dir, EngineSettings(temperature=0.0)).start()
    try:
        runs = [collect(engine.submit(ask("Hello", max_tokens=12))) for _ in range(2)]
        assert runs[0].text == runs[1].text
        assert runs[0].finish.usage.completion_tokens <= 12
        seeded = [collect(engine.submit(ask("Hello", max_tokens=12, temperature=1.0, seed=7))).text for _ in range(2)]
        assert seeded[0] == seeded[1]
    finally:
        engine.stop(grace=1)


def test_ignore_eos_generates_max_tokens(scripted_engine):
    # Benchmarks need exact generation lengths: the model's end-of-sequence is made unreachable.
    engine = scripted_engine(lambda prompt: "short reply")
    reply_tokens = len(engine.registry.default.tokenizer.encode("short reply", add_special_tokens=False))
    stopped = collect(engine.submit(ask(max_tokens=20)))
    assert stopped.finish.reason == "stop" and stopped.finish.usage.completion_tokens == reply_tokens
    kept_going = collect(engine.submit(ask(max_tokens=20, ignore_eos=True)))
    assert kept_going.finish.reason == "length" and kept_going.finish.usage.completion_tokens == 20
    assert kept_going.text.startswith("short reply")

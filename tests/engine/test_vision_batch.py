"""Image requests in the continuous batch, the prompt cache keyed by images, and the encoder's cache.

Three tiny random architectures (tests/support/vision_models.py): Qwen2-VL and Qwen2.5-VL (multimodal
RoPE: every token after an image sits at an offset of its own) and LLaVA (plain RoPE). The judge is
mlx-vlm's own generation, one request at a time, as every vision model ran before batching: the batch's
greedy tokens must be the same, and their logprobs the same within float noise. Tiny random models
repeat tokens, so the logprobs (of every token, with alternatives) are what tells a wrong position or a
wrong image row apart.
"""

from __future__ import annotations

import logging
import threading

import pytest

from mlxcli.core.collect import Completion, collect
from mlxcli.core.request import ChatRequest, Message, Sampling
from mlxcli.engine.decoding import Sequence
from mlxcli.engine.engine import EngineSettings, MlxEngine
from mlxcli.engine.kinds import served_model
from mlxcli.engine.vision import language
from mlxcli.server.images import decode
from tests.support.vision_models import make_tiny_llava_dir, make_tiny_vlm_dir, noise_png

TOLERANCE = 1e-4
# Image sizes each architecture's processor takes as they are (LLaVA's crops to 56 pixels anyway).
SIZES = {"qwen2_vl": (112, 168), "qwen2_5_vl": (112, 168), "llava": (56, 90)}


@pytest.fixture(scope="module", params=["qwen2_vl", "qwen2_5_vl", "llava"])
def architecture(request, tokenizer_dir, tiny_vlm_dir, tmp_path_factory):
    name = request.param
    if name == "qwen2_vl":
        return name, tiny_vlm_dir
    if name == "qwen2_5_vl":
        return name, make_tiny_vlm_dir(tokenizer_dir, tmp_path_factory.mktemp("tiny-vl25"), model_type="qwen2_5_vl")
    return name, make_tiny_llava_dir(tokenizer_dir, tmp_path_factory.mktemp("tiny-llava"))


def image(seed: int, size: int = 112):
    return decode(noise_png(seed, size), "image")


def ask(messages: list[Message], max_tokens: int = 10) -> ChatRequest:
    return ChatRequest(messages=messages, sampling=Sampling(temperature=0.0, max_tokens=max_tokens, ignore_eos=True), logprobs=3)


def user(text: str, *images) -> Message:
    return Message("user", text, images=list(images))


def start(run_engine, directory, **settings) -> MlxEngine:
    settings = EngineSettings(temperature=0.0, **settings)
    return run_engine([served_model("tiny-vl", directory, settings)], settings)


@pytest.fixture
def reference(run_engine):
    """Factory: an engine that runs the model through mlx-vlm, one request at a time (an architecture
    mlxcli does not batch)."""

    def make(directory) -> MlxEngine:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(language, "FAMILIES", {})
            engine = start(run_engine, directory)
            collect(engine.submit(ask([user("warm up")], max_tokens=1)))  # loaded now, as mlx-vlm's model
        return engine

    return make


class Passes:
    """The batched vision models' forward passes, as (rows, tokens) in order. ``hold(after)``: the engine
    thread stops at its next pass once ``after`` passes are recorded (``waiting`` is set), until ``release``."""

    def __init__(self):
        self.shapes: list[tuple[int, int]] = []
        self.waiting = threading.Event()
        self._open = threading.Event()
        self._open.set()
        self._after = 0

    def hold(self, after: int = 0) -> None:
        self._after = after
        self._open.clear()

    def release(self) -> None:
        self._open.set()

    def passed(self, shape: tuple[int, int]) -> None:
        if not self._open.is_set() and len(self.shapes) >= self._after:
            self.waiting.set()
            assert self._open.wait(timeout=300), "the forward passes were never released"
        self.shapes.append(shape)

    def decode_rows(self) -> int:
        """The most rows any decode pass (one token each) ran."""
        return max([rows for rows, tokens in self.shapes if tokens == 1], default=0)


@pytest.fixture
def passes(monkeypatch) -> Passes:
    recorder = Passes()
    call = language.VisionLanguage.__call__

    def recording(self, inputs, cache=None, **kwargs):
        recorder.passed(tuple(inputs.shape))
        return call(self, inputs, cache=cache, **kwargs)

    monkeypatch.setattr(language.VisionLanguage, "__call__", recording)
    yield recorder
    recorder.release()


def same_answer(got: Completion, want: Completion) -> None:
    assert got.text == want.text
    assert [t.token for t in got.logprobs] == [t.token for t in want.logprobs]
    for a, b in zip(got.logprobs, want.logprobs):
        assert a.logprob == pytest.approx(b.logprob, abs=TOLERANCE)
        assert [x[1] for x in a.top] == pytest.approx([x[1] for x in b.top], abs=TOLERANCE)


def run_together(engine: MlxEngine, requests: list[ChatRequest], passes: Passes) -> list[Completion]:
    """Submit every request while the engine waits at its first forward pass, then let it run: their answers."""
    passes.hold()
    generations = [engine.submit(r) for r in requests]
    results: list = [None] * len(requests)
    readers = [threading.Thread(target=lambda i=i: results.__setitem__(i, collect(generations[i]))) for i in range(len(requests))]
    for t in readers:
        t.start()
    passes.release()
    for t in readers:
        t.join(timeout=300)
    return results


def test_image_and_text_requests_batch_together_and_answer_as_alone(architecture, run_engine, reference, passes):
    name, directory = architecture
    small, large = SIZES[name]
    requests = [
        ask([user("What is in this picture?", image(1, small))]),
        ask([user("Describe it at length, with every detail you can see in it, please.", image(2, large))], max_tokens=14),
        ask([user("Hello there, no picture this time.")], max_tokens=6),
        ask([user("And this one?", image(3, small))], max_tokens=12),
        ask([user("Hm?", image(4, large))]),
    ]
    alone = reference(directory)
    want = [collect(alone.submit(r)) for r in requests]
    batched = run_together(start(run_engine, directory, prompt_cache_bytes=0), requests, passes)
    assert passes.decode_rows() >= 4  # they decoded together, not one after another
    for got, expected in zip(batched, want):
        same_answer(got, expected)


def test_several_images_in_one_prompt_each_land_on_their_own_tokens(tiny_vlm_dir, run_engine, reference, passes):
    two = [user("Compare these.", image(1, 112), image(2, 168)), Message("assistant", "They differ."), user("And now?", image(3, 140))]
    requests = [ask(two), ask([user("Compare.", image(2, 168), image(1, 112))]), ask([user("One.", image(1, 112))])]
    alone = reference(tiny_vlm_dir)
    want = [collect(alone.submit(r)) for r in requests]
    batched = run_together(start(run_engine, tiny_vlm_dir, prompt_cache_bytes=0), requests, passes)
    for got, expected in zip(batched, want):
        same_answer(got, expected)


def test_an_image_conversation_reads_only_what_is_new_each_turn(architecture, run_engine):
    name, directory = architecture
    warm, cold = start(run_engine, directory), start(run_engine, directory, prompt_cache_bytes=0)
    history = [user("Look at this picture, then tell me what you see in it, in a few words.", image(1, SIZES[name][0]))]
    prompts = []
    for turn in ("And what else can you see there?", "Anything more?"):
        answer = collect(warm.submit(ask(history)))
        prompts.append(answer.finish.usage.prompt_tokens)
        history += [Message("assistant", answer.text), user(turn)]
    third = collect(warm.submit(ask(history)))
    # Turn 3 reads from the cache all of turn 2's prompt and answer (the image with them), as text models do.
    assert third.finish.usage.cached_tokens >= 0.9 * prompts[1]
    same_answer(third, collect(cold.submit(ask(history))))
    assert warm.stats()["image_features"]["tiny-vl"]["encoded"] == 1  # turn 1's; turns 2 and 3 had it cached


def test_the_same_image_in_another_conversation_is_not_encoded_again(tiny_vlm_dir, run_engine):
    warm, cold = start(run_engine, tiny_vlm_dir), start(run_engine, tiny_vlm_dir, prompt_cache_bytes=0)
    collect(warm.submit(ask([user("First look at this.", image(1))])))
    # Another conversation before it: the prompt cache cannot serve the image (its KV depends on what came first).
    again = ask([user("Something else first."), Message("assistant", "Sure."), user("Now about this screenshot.", image(1))])
    answer = collect(warm.submit(again))
    assert warm.stats()["image_features"]["tiny-vl"] == {"images": 1, "bytes": pytest.approx(16 * 64 * 4, rel=0.5), "encoded": 1, "reused": 1}
    same_answer(answer, collect(cold.submit(again)))


def test_another_image_after_the_same_text_shares_only_the_text(architecture, run_engine):
    name, directory = architecture
    warm, cold = start(run_engine, directory), start(run_engine, directory, prompt_cache_bytes=0)
    first = collect(warm.submit(ask([user("What is this?", image(1, SIZES[name][0]))])))
    other = ask([user("What is this?", image(2, SIZES[name][0]))])
    prompt = warm.render(other)
    image_start = prompt.opaque[0][0]
    answer = collect(warm.submit(other))
    assert 0 < answer.finish.usage.cached_tokens <= image_start
    same_answer(answer, collect(cold.submit(other)))
    assert [t.logprob for t in answer.logprobs] != pytest.approx([t.logprob for t in first.logprobs], abs=TOLERANCE)


def test_the_encoder_cache_keeps_within_its_byte_budget(tiny_vlm_dir, run_engine):
    one_image = 16 * 64 * 4  # 16 rows of 64 float32s: a 112-pixel image's features
    engine = start(run_engine, tiny_vlm_dir, vision_cache_bytes=one_image + 100, prompt_cache_bytes=0)
    for seed in (1, 2, 3, 1):
        collect(engine.submit(ask([user("Look.", image(seed))], max_tokens=2)))
    kept = engine.stats()["image_features"]["tiny-vl"]
    assert kept["bytes"] <= one_image + 100 and kept["images"] == 1
    assert (kept["encoded"], kept["reused"]) == (4, 0)  # image 1 was evicted by 2 and 3


def test_no_encoder_cache_still_answers_the_same(tiny_vlm_dir, run_engine):
    request = ask([user("Look.", image(1), image(2, 168))])
    kept = collect(start(run_engine, tiny_vlm_dir).submit(request))
    engine = start(run_engine, tiny_vlm_dir, vision_cache_bytes=0, prompt_cache_bytes=0)
    same_answer(collect(engine.submit(request)), kept)
    assert engine.stats()["image_features"]["tiny-vl"] == {"images": 0, "bytes": 0, "encoded": 2, "reused": 0}


def test_image_conversations_resume_from_the_disk_tier_after_a_restart(tiny_vlm_dir, run_engine, tmp_path):
    settings = {"prompt_cache_dir": str(tmp_path / "cache")}
    history = [user("Look at this picture and describe it.", image(1))]
    first = start(run_engine, tiny_vlm_dir, **settings)
    answer = collect(first.submit(ask(history)))
    first.stop(grace=1)  # the memory tier goes to disk
    history += [Message("assistant", answer.text), user("And then?")]
    restarted = start(run_engine, tiny_vlm_dir, **settings)
    resumed = collect(restarted.submit(ask(history)))
    assert resumed.finish.usage.cached_tokens >= answer.finish.usage.prompt_tokens
    same_answer(resumed, collect(start(run_engine, tiny_vlm_dir, prompt_cache_bytes=0).submit(ask(history))))
    # ...and another image at the same place is not taken for it, from disk either
    history[0] = user("Look at this picture and describe it.", image(2))
    other = collect(restarted.submit(ask(history)))
    assert other.finish.usage.cached_tokens <= restarted.render(ask(history)).opaque[0][0]


def test_a_cancelled_image_request_leaves_the_others_unaffected(tiny_vlm_dir, run_engine, reference):
    requests = [ask([user("One.", image(1))], max_tokens=30), ask([user("Two.", image(2, 168))], max_tokens=30), ask([user("Three.")], max_tokens=30)]
    alone = reference(tiny_vlm_dir)
    want = [collect(alone.submit(r)) for r in requests]
    engine = start(run_engine, tiny_vlm_dir, prompt_cache_bytes=0)
    generations = [engine.submit(r) for r in requests]
    stream = iter(generations[1])
    next(stream)  # it runs
    generations[1].cancel()
    same_answer(collect(generations[0]), want[0])
    same_answer(collect(generations[2]), want[2])


def test_quantized_kv_caches_run_vision_requests_one_at_a_time(tiny_vlm_dir, run_engine, passes):
    engine = start(run_engine, tiny_vlm_dir, kv_bits=8)
    requests = [ask([user("One.", image(1))]), ask([user("One.", image(2))])]
    together = [engine.submit(r) for r in requests]
    one, two = [collect(g) for g in together]
    assert passes.shapes == []  # mlx-vlm's own generation (VisionSolo), one request after the other
    assert len(one.logprobs) == len(two.logprobs) == 10
    assert [t.logprob for t in one.logprobs] != pytest.approx([t.logprob for t in two.logprobs], abs=TOLERANCE)
    same_answer(collect(engine.submit(requests[0])), one)  # the last request's positions did not stay behind


def test_the_log_says_at_load_whether_a_vision_model_batches(tiny_vlm_dir, run_engine, caplog, monkeypatch):
    with caplog.at_level(logging.INFO, logger="mlxcli.engine"):
        collect(start(run_engine, tiny_vlm_dir).submit(ask([user("Hi.")], max_tokens=1)))
        assert "batched with text requests; its prompts cached, keyed by their images" in caplog.text
        caplog.clear()
        monkeypatch.setattr(language, "FAMILIES", {})  # an architecture mlxcli does not read itself
        unknown = start(run_engine, tiny_vlm_dir)
        history = [user("Look at this picture, then tell me what you see.", image(1))]
        first = collect(unknown.submit(ask(history)))
        assert "one request at a time, no prompt cache (mlxcli does not batch mlx-vlm's 'qwen2_vl' yet)" in caplog.text
    history += [Message("assistant", first.text), user("And?")]
    assert collect(unknown.submit(ask(history))).finish.usage.cached_tokens == 0  # its positions live in the model


def test_a_short_image_request_answers_before_a_long_image_prompt_is_read(tiny_vlm_dir, run_engine, reference, passes, monkeypatch):
    """The scheduling policy (schedule.py) over image prompts: shortest remaining first, in slices of at most
    16 tokens here, so that slices end inside images; the long prompt's answer is still its answer alone."""
    long = ask([user("Describe each of these pictures in detail, one by one. " * 30, image(1, 168), image(2, 168), image(3, 168))], max_tokens=4)
    short = ask([user("Title?", image(4))], max_tokens=3)
    want = collect(reference(tiny_vlm_dir).submit(long))
    engine = start(run_engine, tiny_vlm_dir, prefill_step_size=16, prompt_cache_bytes=0)
    assert len(engine.render(long).tokens) > 400  # so that reading it takes many more slices than the short request
    seen: list[tuple[object, str]] = []  # (job, "token" or "end"), in the engine thread's order
    add, finish = Sequence.add, Sequence.finish
    monkeypatch.setattr(Sequence, "add", lambda self, *args, **kwargs: (seen.append((self.job, "token")), add(self, *args, **kwargs))[1])
    monkeypatch.setattr(Sequence, "finish", lambda self, reason: (seen.append((self.job, "end")), finish(self, reason))[1])

    passes.hold(after=3)  # while the long prompt is read: 3 slices of 16 tokens
    reading = engine.submit(long)
    answers: dict[str, Completion] = {}
    reader = threading.Thread(target=lambda: answers.__setitem__("long", collect(reading)))
    reader.start()
    assert passes.waiting.wait(timeout=120), "the long prompt was never read"
    arrived = engine.submit(short)
    passes.release()
    answers["short"] = collect(arrived)
    reader.join(timeout=300)
    assert seen.index((arrived.job, "end")) < seen.index((reading.job, "token"))  # short's last token, then long's first
    assert max(tokens for _, tokens in passes.shapes) <= 16
    same_answer(answers["long"], want)
    assert answers["short"].finish.usage.completion_tokens == 3

"""Speculative decoding with real models: the same greedy answers with speculation off (the plain decode
path), prompt lookup, a draft model (a tiny random model of the same tokenizer) and a model drafting for
itself; and the plain decode path against mlx-lm's own decoding of one request.

The tiny random llama repeats a token or two, so its text alone would hide a wrong KV cache: its
logprobs are compared too (a row whose holes or offset went wrong reads different numbers). The
default model's tests (slow tier) give answers that differ token after token.
"""

from __future__ import annotations

import mlx.core as mx
import pytest
from mlx_lm.generate import generate_step

from mlxcli.core.collect import collect
from mlxcli.core.request import ChatRequest, Message, Sampling
from mlxcli.engine.engine import EngineSettings
from mlxcli.engine.kinds import served_model
from mlxcli.engine.loading import load
from mlxcli.engine.speculation.depth import StepCost
from tests.support.models import make_tiny_model_dir

TOLERANCE = 1e-3  # logprobs of a wider forward pass: the same sums in another order
PROMPTS = ["Tell me about the sea.", "Hi", "Why is the sky blue? Explain it to a child, then to a physicist."]
SOURCE = "\n".join(f"def scale_{i}(value):\n    return old_total(value) * {i} + {i * 7}" for i in range(8))
EDIT = f"Rename old_total to new_total everywhere in this file and reply with the whole file.\n\n```python\n{SOURCE}\n```"


@pytest.fixture
def free_steps(monkeypatch):
    """Every proposal is verified (the measured step cost would decide how often: these tests check what
    verification does, not when it pays)."""
    monkeypatch.setattr(StepCost, "relative", lambda self, proposals: 1.0)


@pytest.fixture(scope="module")
def tiny_draft_dir(tokenizer_dir, tmp_path_factory):
    """Another tiny random llama of the same tokenizer: a draft whose proposals mostly fail."""
    return make_tiny_model_dir(tokenizer_dir, tmp_path_factory.mktemp("draft"), seed=1, layers=1)


def ask(text: str, max_tokens: int, **fields) -> ChatRequest:
    sampling = Sampling(temperature=0.0, max_tokens=max_tokens, ignore_eos=True)
    return ChatRequest(messages=[Message("user", text)], sampling=sampling, **fields)


def answers(run_engine, model_dir, requests: list[ChatRequest], **settings):
    """The requests' answers, submitted together to an engine serving ``model_dir``; and its speculation
    counters (None when it did not speculate)."""
    settings = EngineSettings(temperature=0.0, prompt_cache_bytes=0, **settings)
    engine = run_engine([served_model("m", model_dir, settings)], settings)
    generations = [engine.submit(r) for r in requests]
    results = [collect(g) for g in generations]
    return results, engine.stats().get("speculation", {}).get("m")


def assert_same(results, expected) -> None:
    assert [r.text for r in results] == [e.text for e in expected]
    assert [r.finish.usage.completion_tokens for r in results] == [e.finish.usage.completion_tokens for e in expected]
    for r, e in zip(results, expected):
        assert [t.token for t in r.logprobs] == [t.token for t in e.logprobs]
        worst = max(abs(a.logprob - b.logprob) for a, b in zip(r.logprobs, e.logprobs))
        assert worst < TOLERANCE


@pytest.mark.parametrize("how", ["ngram", "draft", "itself", "ngram+draft"])
def test_greedy_answers_are_the_plain_decode_paths(run_engine, tiny_model_dir, tiny_draft_dir, free_steps, how):
    """Three rows of different lengths in one batch: speculating, each answers token for token (and
    logprob for logprob) what the plain decode path answers."""
    requests = [ask(p, max_tokens=20 + 9 * i, logprobs=1) for i, p in enumerate(PROMPTS)]
    expected, off = answers(run_engine, tiny_model_dir, requests)
    assert off is None  # off by default
    draft = {"draft": tiny_draft_dir, "itself": tiny_model_dir, "ngram+draft": tiny_draft_dir}.get(how)
    settings = {"speculative": "ngram" if "ngram" in how else None, "draft_model": str(draft) if draft else None}
    results, stats = answers(run_engine, tiny_model_dir, requests, **settings)
    assert_same(results, expected)
    assert stats is not None and stats["proposed"] > 0 and stats["steps"] > 0
    if how == "itself":  # the target drafting for itself proposes its own argmax: the draft's cache follows every row
        assert stats["accepted"] >= 0.9 * stats["proposed"]


def test_a_request_kept_from_speculating_answers_alone_in_plain_steps(run_engine, tiny_model_dir, free_steps):
    requests = [ask(PROMPTS[0], 30, speculate=False)]
    results, stats = answers(run_engine, tiny_model_dir, requests, speculative="ngram")
    expected, _ = answers(run_engine, tiny_model_dir, requests)
    assert [r.text for r in results] == [e.text for e in expected]
    assert stats["proposed"] == 0 and stats["steps"] == 0


# ---- the default model (slow tier) ------------------------------------------------------------------


@pytest.mark.default_model
@pytest.mark.parametrize("how", ["ngram", "itself"])
def test_the_default_model_edits_a_file_the_same_with_speculation(run_engine, default_model_dir, free_steps, how):
    """The edit workload, greedy, with a short prose request beside it: token for token the answers of
    the plain decode path; the proposals accept much of the copied file."""
    requests = [ask(EDIT, 160, logprobs=0), ask(PROMPTS[2], 48, logprobs=0)]
    expected, _ = answers(run_engine, default_model_dir, requests)
    settings = {"speculative": "ngram"} if how == "ngram" else {"draft_model": str(default_model_dir)}
    results, stats = answers(run_engine, default_model_dir, requests, **settings)
    assert_same(results, expected)
    assert "def scale_3(value):" in results[0].text  # it copies the file (the 135M model renames nothing)
    assert stats["accepted"] > 40


@pytest.mark.default_model
def test_the_plain_decode_path_is_mlx_lms_own_decoding(run_engine, default_model_dir):
    """Batched beside other requests, each greedy answer is what mlx-lm's ``generate_step`` (mlx-lm's
    server's one-request path) gives for its prompt alone: our decode batch keeps mlx-lm's step."""
    requests = [ChatRequest(messages=[Message("user", p)], sampling=Sampling(temperature=0.0, max_tokens=24 + 8 * i))
                for i, p in enumerate([EDIT, *PROMPTS])]
    settings = EngineSettings(temperature=0.0, prompt_cache_bytes=0)
    engine = run_engine([served_model("m", default_model_dir, settings)], settings)
    generations = [engine.submit(r) for r in requests]
    results = [collect(g) for g in generations]
    served = engine.registry.models[0]
    prompts = [engine.render(r).tokens for r in requests]
    loaded = load("reference", default_model_dir)  # as the engine loads it (the CPU fast path's dtype too)
    for request, tokens, result in zip(requests, prompts, results):
        steps = generate_step(mx.array(tokens), loaded.model, max_tokens=request.sampling.max_tokens,
                              sampler=lambda logprobs: mx.argmax(logprobs, axis=-1))
        expected = []
        for token, _ in steps:
            if token in served.stop_tokens:
                break
            expected.append(token)
        assert result.finish.reason == ("length" if len(expected) == request.sampling.max_tokens else "stop")
        assert result.text == loaded.tokenizer.decode(expected)


def test_a_model_whose_caches_cannot_drop_positions_runs_without_and_says_so(run_engine, tokenizer_dir, tmp_path, caplog):
    """Qwen3-Next's recurrent layers (ArraysCache) cannot rewind a rejected proposal: the model loads and
    answers as without speculation, and the log says why at load."""
    from tests.support.models import make_tiny_hybrid_model_dir

    directory = make_tiny_hybrid_model_dir(tokenizer_dir, tmp_path / "hybrid")
    request = [ask(PROMPTS[0], 12)]
    expected, _ = answers(run_engine, directory, request)
    with caplog.at_level("WARNING", logger="mlxcli.engine"):
        results, stats = answers(run_engine, directory, request, speculative="ngram")
    assert [r.text for r in results] == [e.text for e in expected]
    assert stats is None
    assert any("speculative decoding (ngram) is off" in r.getMessage() and "cannot drop positions" in r.getMessage()
               for r in caplog.records)

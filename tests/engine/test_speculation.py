"""Speculative decoding inside the continuous batch, with the scripted model (its answers copy parts of
their prompts, as an edit does): the same answers as without speculation, in fewer forward passes;
rows that propose beside rows that do not, in one pass; structured output, stop strings,
``max_tokens``, cancellation and the prompt cache as without.

The step cost is taken as free here (``free_steps``), so a row verifies every proposal it has: the
measured cost (on a loaded machine, of a scripted model) would make how often it does so vary, and
these tests check what verification does, not when it is worth it (test_speculation_parts.py).
"""

from __future__ import annotations

import json

import pytest

from mlxcli.core.collect import collect
from mlxcli.core.request import ChatRequest, Grammar, Message, Sampling
from mlxcli.engine.constraints import Constraint
from mlxcli.engine.engine import EngineSettings
from mlxcli.engine.speculation.depth import StepCost
from tests.support.models import scripted_model, scripted_of

FILE = "\n".join(f"def step_{i}(value):\n    return old_name(value) * {i} + {i * 7}" for i in range(10))
EDITED = FILE.replace("old_name", "new_name")
PROSE = "Zebras quietly juggle purple violins beneath frozen waterfalls while sleepy owls hum."


def respond(prompt: str) -> str:
    if "rename" in prompt:
        return "Here is the file:\n" + EDITED
    if "echo" in prompt:
        return prompt[prompt.index("BEGIN") + 5 : prompt.index("END")]
    return PROSE


def edit(max_tokens: int = 400, **sampling) -> ChatRequest:
    return ChatRequest(
        messages=[Message("user", f"Please rename old_name to new_name in this file:\n{FILE}")],
        sampling=Sampling(max_tokens=max_tokens, **sampling),
    )


def echo(text: str, **fields) -> ChatRequest:
    return ChatRequest(messages=[Message("user", f"Please echo BEGIN{text}END")], sampling=Sampling(max_tokens=400), **fields)


PROSE_REQUEST = ChatRequest(messages=[Message("user", "Say something.")], sampling=Sampling(max_tokens=100))


@pytest.fixture
def free_steps(monkeypatch):
    monkeypatch.setattr(StepCost, "relative", lambda self, proposals: 1.0)


@pytest.fixture
def engines(tokenizer_dir, run_engine, free_steps):
    """Factory: ``make(speculative)``, a scripted engine with prompt lookup on ("ngram") or off (None)."""

    def make(speculative: str | None, **settings):
        settings = EngineSettings(temperature=0.0, speculative=speculative, **settings)
        return run_engine([scripted_model(tokenizer_dir, respond, settings=settings)], settings)

    return make


def together(engine, requests: list[ChatRequest]):
    generations = [engine.submit(r) for r in requests]
    return [collect(g) for g in generations]


def test_rows_that_propose_beside_a_row_that_does_not_answer_as_without(engines):
    plain = engines(None)
    expected = together(plain, [edit(), PROSE_REQUEST, edit(max_tokens=150)])
    plain_passes = scripted_of(plain).calls

    engine = engines("ngram")
    answers = together(engine, [edit(), PROSE_REQUEST, edit(max_tokens=150)])
    assert [a.text for a in answers] == [e.text for e in expected]
    assert answers[0].text == "Here is the file:\n" + EDITED
    assert [a.finish.usage.completion_tokens for a in answers] == [e.finish.usage.completion_tokens for e in expected]
    assert [a.finish.reason for a in answers] == ["stop", "stop", "length"]
    model = scripted_of(engine)
    assert model.calls < plain_passes / 2
    # one pass verified proposals of some rows while another row (the prose) fed its token alone
    assert any(rows == 3 and width > 1 for rows, width in model.forwards)
    stats = engine.stats()["speculation"]["scripted"]
    assert stats["mode"] == "ngram" and stats["accepted"] > 200
    assert stats["proposed_at"][0] >= stats["proposed_at"][-1] > 0


def test_a_stop_string_inside_an_accepted_run_ends_the_answer_there(engines):
    text = " ".join(f"item{i}" for i in range(40))
    stop = "item23"
    engine = engines("ngram")
    first = collect(engine.submit(echo(text)))
    assert first.text == text  # a copy: after its first tokens, each step accepts a run of them
    stopped = collect(engine.submit(ChatRequest(messages=echo(text).messages, sampling=Sampling(max_tokens=400, stop=[stop]))))
    assert stopped.text == text[: text.index(stop)] and stopped.finish.reason == "stop"
    assert stopped.finish.stop_sequence == stop
    # what the prompt cache kept of it is exactly what was answered: the same request reads it back
    again = engine.submit(ChatRequest(messages=echo(text).messages, sampling=Sampling(max_tokens=400, stop=[stop])))
    result = collect(again)
    assert result.text == stopped.text and again.cached_tokens > 0


def test_max_tokens_inside_an_accepted_run(engines):
    plain, engine = engines(None), engines("ngram")
    for limit in (37, 38, 45):
        expected = collect(plain.submit(edit(max_tokens=limit)))
        answer = collect(engine.submit(edit(max_tokens=limit)))
        assert answer.text == expected.text and answer.finish.usage.completion_tokens == limit
        assert answer.finish.reason == "length"


def test_a_proposal_the_grammar_forbids_is_cut_there(engines, monkeypatch):
    """The prompt's object has a field the schema forbids: the lookup proposes it after "Paris", the
    grammar cuts the proposal there, and the answer is the one without speculation."""
    cuts = []
    limit = Constraint.limit

    def spying(self, ahead):
        allowed = limit(self, ahead)
        cuts.append(allowed < len(ahead))
        return allowed

    monkeypatch.setattr(Constraint, "limit", spying)
    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"], "additionalProperties": False}
    obj = '{"city": "Paris", "note": "a very long note that the schema does not allow at all"}'
    request = echo(obj, response_format=Grammar("json", "response_format", schema))
    expected = collect(engines(None).submit(request))
    answer = collect(engines("ngram").submit(request))
    assert answer.text == expected.text and json.loads(answer.text) == {"city": "Paris"}
    assert any(cuts), "no proposal reached a token the grammar forbids"


def test_cancelling_a_request_while_its_proposals_are_verified(engines):
    plain = engines(None)
    expected = collect(plain.submit(echo(FILE)))
    engine = engines("ngram")
    victim, survivor = engine.submit(edit()), engine.submit(echo(FILE))
    model = scripted_of(engine)

    def cancel_mid_verification(rows: int, width: int) -> None:
        if rows == 2 and width > 1 and victim.job.generated_tokens > 20:
            model.on_forward = None
            victim.cancel()

    model.on_forward = cancel_mid_verification
    assert collect(survivor).text == expected.text
    assert victim.job.cancelled.is_set() and victim.job.generated_tokens < 150
    assert engine.stats()["active_requests"] == 0
    # the batch and the prompt cache are sound after it: the same edit answers in full
    assert collect(engine.submit(edit())).text == "Here is the file:\n" + EDITED


def test_logprobs_are_the_target_models_own(engines):
    request = ChatRequest(messages=edit().messages, sampling=Sampling(max_tokens=60), logprobs=2)
    expected = collect(engines(None).submit(request))
    answer = collect(engines("ngram").submit(request))
    assert answer.text == expected.text
    assert [t.token for t in answer.logprobs] == [t.token for t in expected.logprobs]
    assert all(abs(a.logprob - b.logprob) < 1e-3 for a, b in zip(answer.logprobs, expected.logprobs))


def test_a_model_that_says_off_does_not_speculate(tokenizer_dir, run_engine, free_steps):
    from mlxcli.engine.settings import ModelSpec

    settings = EngineSettings(temperature=0.0, speculative="ngram")
    model = scripted_model(tokenizer_dir, respond, spec=ModelSpec(model="scripted", speculative="off"), settings=settings)
    engine = run_engine([model], settings)
    assert collect(engine.submit(edit())).text == "Here is the file:\n" + EDITED
    assert all(width == 1 for _, width in scripted_of(engine).forwards[-100:])
    assert "scripted" not in engine.stats().get("speculation", {})


def test_metrics_count_what_was_proposed_and_accepted(engines, serve):
    import openai

    from mlxcli.server.settings import ServerSettings
    from tests.support.prometheus import scrape, value

    engine = engines("ngram")
    server = serve(engine, ServerSettings(port=0))
    before = scrape(server)
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="x", max_retries=0)
    answer = client.chat.completions.create(model="scripted", messages=[{"role": "user", "content": edit().messages[0].content}])
    assert answer.choices[0].message.content == "Here is the file:\n" + EDITED
    after = scrape(server)

    def moved(name: str, **labels) -> float:
        return value(after, name, model="scripted", **labels) - value(before, name, model="scripted", **labels)

    proposed, accepted = moved("mlxcli:spec_proposed_tokens_total"), moved("mlxcli:spec_accepted_tokens_total")
    assert proposed >= accepted > 100 and moved("mlxcli:spec_steps_total") > 0
    assert accepted < answer.usage.completion_tokens  # each step hands out a token of its own besides those it accepted
    first = moved("mlxcli:spec_position_proposed_total", position="1")
    assert first > 0 and moved("mlxcli:spec_position_accepted_total", position="1") <= first
    assert sum(moved("mlxcli:spec_position_accepted_total", position=str(i)) for i in range(1, 9)) == accepted

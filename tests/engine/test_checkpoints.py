"""Message-boundary checkpoints: a model whose cache cannot be trimmed (hybrid attention/SSM, as
Qwen3.5) reuses a stored prefix only if it is stored as is. Its prompts are read in segments and the
KV at the message boundaries is kept, so that the next turn, whose history the template re-renders
(Qwen3-style: the last answer's reasoning dropped), still starts from everything up to that answer.

The scripted model's cache here also holds a running state (an ArraysCache) and cannot be trimmed.
"""

from __future__ import annotations

import pytest
from mlx_lm.utils import load_tokenizer

from mlxcli.core.collect import collect
from mlxcli.core.request import ChatRequest, Message, Sampling
from mlxcli.engine.engine import EngineSettings
from tests.support.models import generation_marker, scripted_model
from tests.support.tool_models import chat_template, make_tool_tokenizer_dir

REPLY = "<think>\nThe user wants a number.\n</think>\n\nIt is {n}."
SYSTEM = Message("system", "You are a calculator that answers in one short sentence.")


@pytest.fixture(scope="module")
def qwen3_tokenizer(tokenizer_dir, tmp_path_factory):
    """SmolLM2's tokenizer with a Qwen3-style template that drops earlier reasoning from history."""
    directory = make_tool_tokenizer_dir(tokenizer_dir, tmp_path_factory.mktemp("qwen3-history"), chat_template(history="dropped"))
    return directory, load_tokenizer(directory)


@pytest.fixture
def reasoning_engine(qwen3_tokenizer, run_engine):
    """Factory: an engine serving a scripted model that reasons, then answers the turn's number."""
    directory, tokenizer = qwen3_tokenizer

    def make(trimmable: bool = False, **settings):
        respond = lambda prompt: REPLY.format(n=prompt.count("<|im_start|>user"))
        model = scripted_model(directory, respond, tokenizer=tokenizer, trimmable=trimmable)
        return run_engine([model], EngineSettings(temperature=0.0, **settings))

    return make


def turn(engine, messages: list[Message]):
    return collect(engine.submit(ChatRequest(messages=list(messages), sampling=Sampling(max_tokens=64))))


@pytest.mark.parametrize("kv_bits", [None, 8], ids=["batched", "solo"])
def test_a_template_that_drops_reasoning_from_history_still_reuses_everything_up_to_the_last_answer(reasoning_engine, qwen3_tokenizer, kv_bits):
    engine = reasoning_engine(kv_bits=kv_bits)
    marker = len(generation_marker(qwen3_tokenizer[1]))
    history = [SYSTEM, Message("user", "What is two plus two?")]
    for n in (1, 2, 3):
        prompt = engine.render(ChatRequest(messages=list(history))).tokens
        answer = turn(engine, history)
        assert (answer.text, answer.reasoning) == (f"It is {n}.", "The user wants a number.")
        history += [Message("assistant", answer.text, reasoning=answer.reasoning), Message("user", "And the next one?")]
        follow_up = ChatRequest(messages=list(history))
        assert "The user wants a number" not in engine.render(follow_up).text  # the template dropped it
        # The next turn starts from this turn's prompt, up to where the answer begins.
        assert turn(engine, history).finish.usage.cached_tokens >= len(prompt) - marker
        history = history[:-1] + [Message("user", f"Now turn {n + 1}?")]


def test_checkpoints_are_kept_only_for_caches_that_cannot_be_trimmed_and_within_the_budget(reasoning_engine):
    question = [SYSTEM, Message("user", "What is two plus two?")]
    trimmable = reasoning_engine(trimmable=True)
    turn(trimmable, question)
    assert len(trimmable.prompt_cache) == 1  # the whole exchange: it serves every prefix of itself
    hybrid = reasoning_engine()
    turn(hybrid, question)
    assert len(hybrid.prompt_cache) == 3  # and the KV after the system message and after the question
    budget = hybrid.prompt_cache.nbytes * 3
    bounded = reasoning_engine(prompt_cache_bytes=budget)
    history = list(question)
    for n in range(6):
        answer = turn(bounded, history)
        history += [Message("assistant", answer.text), Message("user", f"And {n}?")]
        assert 0 < bounded.prompt_cache.nbytes <= budget
    assert len(bounded.prompt_cache) < 6 * 3  # the oldest were evicted

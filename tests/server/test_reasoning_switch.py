"""Each API's reasoning switch lands on the one neutral effort of ChatRequest (the engine maps it on)."""

from __future__ import annotations

import pytest

from mlxcli.server.providers.anthropic import request as anthropic
from mlxcli.server.providers.openai import chat, responses
from mlxcli.server.validate import Obj
from mlxcli.store import ConversationStore

HI = [{"role": "user", "content": "hi"}]


@pytest.mark.parametrize(
    "effort, expected",
    [(None, None), ("none", "off"), ("minimal", "minimal"), ("low", "low"), ("high", "high"), ("xhigh", "xhigh"), ("max", "max")],
)
def test_openai_reasoning_effort(effort, expected):
    body = {"messages": HI, **({"reasoning_effort": effort} if effort else {})}
    assert chat.parse(body).request.reasoning == expected
    body = {"input": "hi", **({"reasoning": {"effort": effort}} if effort else {})}
    assert responses.parse(body, ConversationStore.memory()).request.reasoning == expected


def test_chat_template_kwargs_reasoning_effort_counts_and_still_reaches_the_template():
    request = chat.parse({"messages": HI, "chat_template_kwargs": {"reasoning_effort": "low"}}).request
    assert request.reasoning == "low" and request.template_kwargs == {"reasoning_effort": "low"}
    odd = chat.parse({"messages": HI, "chat_template_kwargs": {"reasoning_effort": "deep"}}).request
    assert odd.reasoning is None and odd.template_kwargs == {"reasoning_effort": "deep"}  # the template's business


@pytest.mark.parametrize(
    "fields, expected",
    [
        ({}, None),
        ({"thinking": {"type": "disabled"}}, "off"),
        ({"thinking": {"type": "adaptive"}}, None),  # the model's default
        ({"thinking": {"type": "enabled", "budget_tokens": 1024}}, "low"),
        ({"thinking": {"type": "enabled", "budget_tokens": 10000}}, "medium"),
        ({"thinking": {"type": "enabled", "budget_tokens": 31999}}, "high"),
        ({"output_config": {"effort": "max"}}, "max"),
        ({"thinking": {"type": "enabled", "budget_tokens": 1024}, "output_config": {"effort": "high"}}, "high"),
        ({"thinking": {"type": "disabled"}, "output_config": {"effort": "high"}}, "off"),
    ],
)
def test_anthropic_thinking_and_effort(fields, expected):
    body = {"model": "m", "max_tokens": 8, "messages": HI, **fields}
    assert anthropic.parse(body).request.reasoning == expected
    assert anthropic.parse_prompt(Obj(body)).reasoning == expected  # count_tokens renders the same prompt


@pytest.mark.parametrize(
    "think, expected",
    [(None, None), (False, "off"), (True, "medium"), ("low", "low"), ("medium", "medium"), ("high", "high"), ("max", "max")],
)
def test_ollama_think(think, expected):
    from mlxcli.server.providers.ollama import request as ollama

    body = {"model": "m", "messages": HI, **({} if think is None else {"think": think})}
    assert ollama.parse_chat(body).request.reasoning == expected
    assert ollama.parse_generate({"model": "m", "prompt": "hi", **({} if think is None else {"think": think})}).request.reasoning == expected

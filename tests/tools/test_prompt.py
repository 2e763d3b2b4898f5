"""Prompting: format detection, tools through the template or the fallback, tool_choice, reasoning switches."""

from __future__ import annotations

import functools
import json

import pytest
from mlx_lm.utils import load_tokenizer as mlx_load_tokenizer

from mlxcli.core.errors import InvalidRequest, ModelError
from mlxcli.core.request import ChatRequest, Message, ToolCall, ToolSpec
from mlxcli.engine import formats, prompt
from mlxcli.engine.output import OutputProcessor

WEATHER = ToolSpec("get_weather", "Weather for a city", {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]})
TIME = ToolSpec("get_time", None, {"type": "object", "properties": {}})


def conversation(**kwargs) -> ChatRequest:
    """A user question, the assistant's two calls, their results, and a follow-up."""
    return ChatRequest(
        messages=[
            Message("system", "Be brief."),
            Message("user", "Weather and time in Paris?"),
            Message("assistant", "Checking.", tool_calls=[ToolCall("call_1", "get_weather", '{"city": "Paris"}'), ToolCall("call_2", "get_time", "{}")]),
            Message("tool", "SUNNY-21C", tool_call_id="call_1"),
            Message("tool", "NOON-CET", tool_call_id="call_2"),
            Message("user", "And tomorrow?"),
        ],
        tools=[WEATHER, TIME],
        **kwargs,
    )


@functools.lru_cache(maxsize=None)
def load_tokenizer(directory):
    return mlx_load_tokenizer(directory)  # slow (a second): read each directory once


def loaded(directory):
    tokenizer = load_tokenizer(directory)
    return tokenizer, formats.detect(tokenizer)


@pytest.mark.parametrize("single", [False, True])
@pytest.mark.parametrize("calls, parser", [("json", "json_tools"), ("xml", "qwen3_coder")])
def test_formats_are_detected_from_the_template(tool_tokenizer_dir, calls, parser, single):
    tokenizer, fmt = loaded(tool_tokenizer_dir(calls, single_token_markers=single))
    assert fmt.native_tools and fmt.tools.parser == parser and not fmt.tools.fallback
    assert (fmt.thinking.start, fmt.thinking.end, fmt.thinking.switch) == ("<think>", "</think>", True)
    assert tokenizer.has_thinking == single  # found in the vocabulary, or else in the template's text


def test_a_template_without_tools_gets_the_fallback(tokenizer_dir):
    fmt = loaded(tokenizer_dir)[1]  # SmolLM2's own template
    assert not fmt.native_tools and fmt.tools.parser == "json_tools" and fmt.tools.fallback
    assert fmt.thinking is None


def test_overrides(tool_tokenizer_dir, tokenizer_dir):
    tokenizer = load_tokenizer(tool_tokenizer_dir("json"))
    assert formats.detect(tokenizer, "glm47").tools.parser == "glm47"
    assert formats.detect(tokenizer, "none").tools is None
    assert formats.detect(tokenizer, reasoning_parser="none").thinking is None
    assert formats.detect(tokenizer, reasoning_parser="longcat").thinking.start == "<longcat_think>"
    # Without template support the fallback's own format is used, whatever the override.
    assert formats.detect(load_tokenizer(tokenizer_dir), "glm47").tools.parser == "json_tools"
    with pytest.raises(ModelError, match="unknown tool-call parser 'nope'.*json_tools"):
        formats.detect(tokenizer, "nope")
    with pytest.raises(ModelError, match="unknown reasoning parser"):
        formats.detect(tokenizer, reasoning_parser="nope")


@pytest.mark.parametrize("calls", ["json", "xml"])
def test_tools_calls_and_results_go_through_the_template(tool_tokenizer_dir, calls):
    tokenizer, fmt = loaded(tool_tokenizer_dir(calls))
    rendered = prompt.render(tokenizer, conversation(), fmt)
    text = rendered.text
    system = text.split("<|im_end|>")[0]
    assert system.startswith("<|im_start|>system\nBe brief.\n\n# Tools") and "get_weather" in system and "get_time" in system
    if calls == "json":
        assert '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>' in text
    else:
        assert "<tool_call>\n<function=get_weather>\n<parameter=city>\nParis\n</parameter>\n</function>\n</tool_call>" in text
    assert "<|im_start|>user\n<tool_response>\nSUNNY-21C\n</tool_response>\n<tool_response>\nNOON-CET\n</tool_response><|im_end|>" in text
    assert text.endswith("<|im_start|>assistant\n")
    assert rendered.plan.tools is fmt.tools and rendered.plan.initial == "normal"
    assert [s["function"]["name"] for s in rendered.plan.tool_specs] == ["get_weather", "get_time"]


def test_fallback_writes_tools_calls_and_results_as_text(tokenizer_dir):
    tokenizer, fmt = loaded(tokenizer_dir)
    text = prompt.render(tokenizer, conversation(), fmt).text
    system = text.split("<|im_end|>")[0]
    assert system.startswith("<|im_start|>system\nBe brief.\n\n# Tools\n")
    tools = system.split("<tools>\n")[1].split("\n</tools>")[0].splitlines()
    assert [json.loads(line)["function"]["name"] for line in tools] == ["get_weather", "get_time"]
    assert "<tool_call>\n<function-name>" not in text and '{"name": <function-name>, "arguments": <args-json-object>}' in system
    assert (
        "<|im_start|>assistant\nChecking.\n"
        '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>\n'
        '<tool_call>\n{"name": "get_time", "arguments": {}}\n</tool_call><|im_end|>'
    ) in text
    assert "<|im_start|>user\n<tool_response>\nSUNNY-21C\n</tool_response>\n<tool_response>\nNOON-CET\n</tool_response><|im_end|>" in text


def test_fallback_without_a_system_message_adds_one(tokenizer_dir):
    tokenizer, fmt = loaded(tokenizer_dir)
    text = prompt.render(tokenizer, ChatRequest([Message("user", "hi")], tools=[WEATHER]), fmt).text
    assert text.startswith("<|im_start|>system\n# Tools\n")


@pytest.mark.parametrize("directory", ["json", "smollm2"])
def test_tool_choice_none_renders_and_parses_no_tools(tool_tokenizer_dir, tokenizer_dir, directory):
    tokenizer, fmt = loaded(tokenizer_dir if directory == "smollm2" else tool_tokenizer_dir("json"))
    rendered = prompt.render(tokenizer, conversation(tool_choice="none"), fmt)
    assert "# Tools" not in rendered.text and "get_time" in rendered.text  # the earlier call is still there
    assert rendered.plan.tools is None


@pytest.mark.parametrize("calls", ["json", "xml"])
def test_required_and_named_tool_choice_prefill_the_call(tool_tokenizer_dir, calls):
    tokenizer, fmt = loaded(tool_tokenizer_dir(calls))
    required = prompt.render(tokenizer, conversation(tool_choice="required"), fmt)
    assert required.text.endswith("<|im_start|>assistant\n<tool_call>")
    assert (required.plan.initial, required.plan.prefill) == ("tool", "")
    named = prompt.render(tokenizer, conversation(tool_choice={"name": "get_time"}), fmt)
    expected = '<tool_call>\n{"name": "get_time", "arguments": ' if calls == "json" else "<tool_call>\n<function=get_time>\n"
    assert named.text.endswith("<|im_start|>assistant\n" + expected)
    assert named.plan.initial == "tool" and named.plan.prefill == expected[len("<tool_call>") :]
    assert named.tokens == tokenizer.encode(named.text, add_special_tokens=False)


def test_a_forced_call_closes_a_think_block_the_template_opened(tool_tokenizer_dir):
    tokenizer, fmt = loaded(tool_tokenizer_dir("json", "opened"))
    assert prompt.render(tokenizer, conversation(), fmt).plan.initial == "reasoning"
    rendered = prompt.render(tokenizer, conversation(tool_choice="required"), fmt)
    assert rendered.text.endswith("<|im_start|>assistant\n<think>\n</think>\n\n<tool_call>")
    assert rendered.plan.initial == "tool"


def test_requests_that_cannot_be_honoured_are_refused(tool_tokenizer_dir):
    tokenizer = load_tokenizer(tool_tokenizer_dir("json"))
    with pytest.raises(InvalidRequest) as err:
        prompt.render(tokenizer, conversation(), formats.detect(tokenizer, "none"))
    assert err.value.param == "tools" and "turned off" in err.value.message
    with pytest.raises(InvalidRequest) as err:  # muse_spark has no known way to begin a named call
        prompt.render(tokenizer, conversation(tool_choice={"name": "get_time"}), formats.detect(tokenizer, "muse_spark"))
    assert err.value.param == "tool_choice"
    with pytest.raises(InvalidRequest) as err:
        prompt.render(tokenizer, ChatRequest([Message("user", "hi")], tool_choice="required"), formats.detect(tokenizer))
    assert err.value.param == "tool_choice"
    # tool_choice none with tool calling off is fine: nothing to parse.
    assert prompt.render(tokenizer, conversation(tool_choice="none"), formats.detect(tokenizer, "none")).plan.tools is None


def test_parallel_tool_calls_false_allows_one_call(tool_tokenizer_dir):
    tokenizer, fmt = loaded(tool_tokenizer_dir("json"))
    assert prompt.render(tokenizer, conversation(parallel_tool_calls=False), fmt).plan.max_calls == 1
    assert prompt.render(tokenizer, conversation(), fmt).plan.max_calls is None


@pytest.mark.parametrize(
    "effort, kwargs, thinking",
    [
        (None, {}, True),  # the model's default: think
        (None, {"enable_thinking": False}, False),  # chat_template_kwargs
        ("off", {}, False),  # reasoning_effort none, Anthropic thinking disabled
        ("minimal", {}, False),
        ("low", {}, True),
        ("high", {}, True),
        ("off", {"enable_thinking": True}, True),  # a client's own template kwarg wins
    ],
)
def test_reasoning_switch(tool_tokenizer_dir, effort, kwargs, thinking):
    tokenizer, fmt = loaded(tool_tokenizer_dir("json", "opened"))
    request = ChatRequest([Message("user", "2+2?")], reasoning=effort, template_kwargs=kwargs)
    rendered = prompt.render(tokenizer, request, fmt)
    if thinking:
        assert rendered.text.endswith("<|im_start|>assistant\n<think>\n") and rendered.plan.initial == "reasoning"
    else:
        assert rendered.text.endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n") and rendered.plan.initial == "normal"


def test_echoed_reasoning_reaches_the_template(tool_tokenizer_dir):
    tokenizer, fmt = loaded(tool_tokenizer_dir("json"))
    request = ChatRequest([Message("user", "hi"), Message("assistant", "Hello.", reasoning="They greeted me."), Message("user", "bye")])
    assert "<|im_start|>assistant\n<think>\nThey greeted me.\n</think>\n\nHello.<|im_end|>" in prompt.render(tokenizer, request, fmt).text


def test_the_plan_reads_what_the_prompt_began(tool_tokenizer_dir):
    """The prefilled part of a named call and the model's continuation parse as one call."""
    tokenizer, fmt = loaded(tool_tokenizer_dir("json"))
    plan = prompt.render(tokenizer, conversation(tool_choice={"name": "get_weather"}), fmt).plan
    processor = OutputProcessor([], plan)
    events = processor.feed('{"city": "Lyon"}}\n</tool_call>')[0] + processor.finish()
    assert [(e.name, e.arguments) for e in events] == [("get_weather", ""), (None, '{"city": "Lyon"}')]


@pytest.fixture(scope="module")
def effort_tokenizer_dir(tokenizer_dir, tmp_path_factory):
    from tests.support.tool_models import make_tool_tokenizer_dir

    return make_tool_tokenizer_dir(tokenizer_dir, tmp_path_factory.mktemp("effort"), EFFORT_TEMPLATE)


EFFORT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
    "{% if reasoning_effort is defined %}Reasoning: {{ reasoning_effort }}\n{% endif %}<|im_start|>assistant\n"
)


@pytest.mark.parametrize(
    "effort, kwargs, expected",
    [
        ("high", {}, "Reasoning: high"),
        ("off", {}, "Reasoning: low"),  # the template's levels: its lowest for a model that always reasons
        ("max", {}, "Reasoning: high"),
        (None, {}, None),  # the template's own default
        ("high", {"reasoning_effort": "medium"}, "Reasoning: medium"),  # the client's template kwarg wins
    ],
)
def test_an_effort_reaches_a_template_that_reads_reasoning_effort(effort_tokenizer_dir, effort, kwargs, expected):
    tokenizer, fmt = loaded(effort_tokenizer_dir)
    assert fmt.efforts == ("low", "medium", "high")
    text = prompt.render(tokenizer, ChatRequest([Message("user", "2+2?")], reasoning=effort, template_kwargs=kwargs), fmt).text
    assert (expected in text) if expected else ("Reasoning:" not in text)

"""Rendering for gpt-oss: history the way its template expects it, token for token; reasoning effort per API."""

from __future__ import annotations

import anthropic
import openai
import pytest

from mlxcli.core.request import ChatRequest, Message, ToolCall, ToolSpec
from mlxcli.engine import formats, prompt
from tests.support.harmony import SPECIAL_TOKENS, msg, reply
from tests.support.models import Recording

WEATHER = ToolSpec("get_weather", "Current weather", {"type": "object", "properties": {"city": {"type": "string"}}})
TIME = ToolSpec("get_time", "Local time", {"type": "object", "properties": {"zone": {"type": "string"}}})
FIRST_TURN = [
    Message("system", "Answer briefly."),
    Message("user", "Weather and time in Paris?"),
    Message("assistant", "Looking both up.", reasoning="Two lookups.", tool_calls=[
        ToolCall("c1", "get_weather", '{"city": "Paris"}'), ToolCall("c2", "get_time", '{"zone": "CET"}'),
    ]),
    Message("tool", "12:00", tool_call_id="c2"),  # the results in another order than the calls
    Message("tool", "SUNNY", tool_call_id="c1"),
]
SECOND_TURN = [
    Message("assistant", "Sunny, and noon.", reasoning="Both came back."),
    Message("user", "And tomorrow?"),
    Message("assistant", None, reasoning="One more lookup.", tool_calls=[ToolCall("c3", "get_weather", '{"city": "Paris", "days": 2}')]),
    Message("tool", "RAIN", tool_call_id="c3"),
]

HEAD = (
    "<|start|>system<|message|>You are a helpful assistant.\nReasoning: high\n\n"
    "# Valid channels: analysis, commentary, final. Channel must be included for every message.\n"
    "Calls to these tools must go to the commentary channel: 'functions'.<|end|>"
    "<|start|>developer<|message|># Instructions\n\nAnswer briefly.\n\n# Tools\n\n## functions\n\nnamespace functions {\n\n"
    '// Current weather\ntype get_weather = (_: {"type": "object", "properties": {"city": {"type": "string"}}}) => any;\n\n'
    '// Local time\ntype get_time = (_: {"type": "object", "properties": {"zone": {"type": "string"}}}) => any;\n\n'
    "} // namespace functions<|end|>"
    "<|start|>user<|message|>Weather and time in Paris?<|end|>"
)
CALLS_AND_RESULTS = (  # one call per message, each followed by its own result
    '<|start|>assistant to=functions.get_weather<|channel|>commentary <|constrain|>json<|message|>{"city": "Paris"}<|call|>'
    '<|start|>functions.get_weather to=assistant<|channel|>commentary<|message|>"SUNNY"<|end|>'
    '<|start|>assistant to=functions.get_time<|channel|>commentary <|constrain|>json<|message|>{"zone": "CET"}<|call|>'
    '<|start|>functions.get_time to=assistant<|channel|>commentary<|message|>"12:00"<|end|>'
)
# While the turn has no final answer, the model sees its reasoning (and the text it wrote before the calls).
DURING_THE_FIRST_TURN = HEAD + "<|start|>assistant<|channel|>analysis<|message|>Two lookups.\n\nLooking both up.<|end|>" + CALLS_AND_RESULTS + "<|start|>assistant"
# Once answered, the turn's reasoning is gone; the answer ends with <|end|>, never <|return|>.
DURING_THE_SECOND_TURN = (
    HEAD + CALLS_AND_RESULTS
    + "<|start|>assistant<|channel|>final<|message|>Sunny, and noon.<|end|>"
    + "<|start|>user<|message|>And tomorrow?<|end|>"
    + "<|start|>assistant<|channel|>analysis<|message|>One more lookup.<|end|>"
    + '<|start|>assistant to=functions.get_weather<|channel|>commentary <|constrain|>json<|message|>{"city": "Paris", "days": 2}<|call|>'
    + '<|start|>functions.get_weather to=assistant<|channel|>commentary<|message|>"RAIN"<|end|>'
    + "<|start|>assistant"
)


@pytest.mark.parametrize("messages, expected", [(FIRST_TURN, DURING_THE_FIRST_TURN), (FIRST_TURN + SECOND_TURN, DURING_THE_SECOND_TURN)])
def test_a_conversation_with_tools_reasoning_and_results_renders_token_for_token(harmony_tokenizer_dir, tokenizers, messages, expected):
    tokenizer = tokenizers(harmony_tokenizer_dir)
    fmt = formats.detect(tokenizer)
    rendered = prompt.render(tokenizer, ChatRequest(messages, tools=[WEATHER, TIME], reasoning="high"), fmt)
    assert rendered.text == expected
    assert rendered.tokens == tokenizer.encode(expected, add_special_tokens=False)
    vocab = tokenizer.get_vocab()
    for marker in SPECIAL_TOKENS:  # each marker one token, as in gpt-oss's vocabulary
        assert rendered.tokens.count(vocab[marker]) == expected.count(marker)


CHAT, RESPONSES, ANTHROPIC = "chat", "responses", "anthropic"
EFFORTS = [
    (CHAT, {}, "medium"),  # the template's default
    (CHAT, {"reasoning_effort": "none"}, "low"),  # gpt-oss cannot turn reasoning off
    (CHAT, {"reasoning_effort": "minimal"}, "low"),
    (CHAT, {"reasoning_effort": "high"}, "high"),
    (CHAT, {"reasoning_effort": "xhigh"}, "high"),
    (CHAT, {"extra_body": {"chat_template_kwargs": {"reasoning_effort": "low"}}}, "low"),
    (CHAT, {"extra_body": {"chat_template_kwargs": {"reasoning_effort": "minimal"}}}, "low"),
    (CHAT, {"extra_body": {"chat_template_kwargs": {"reasoning_effort": "max"}}}, "high"),
    (RESPONSES, {"reasoning": {"effort": "minimal"}}, "low"),
    (RESPONSES, {"reasoning": {"effort": "medium"}}, "medium"),
    (RESPONSES, {"reasoning": {"effort": "xhigh"}}, "high"),
    (ANTHROPIC, {"thinking": {"type": "disabled"}}, "low"),
    (ANTHROPIC, {"thinking": {"type": "adaptive"}}, "medium"),
    (ANTHROPIC, {"thinking": {"type": "enabled", "budget_tokens": 2048}}, "low"),
    (ANTHROPIC, {"thinking": {"type": "enabled", "budget_tokens": 8192}}, "medium"),
    (ANTHROPIC, {"thinking": {"type": "enabled", "budget_tokens": 32000}}, "high"),
    (ANTHROPIC, {"extra_body": {"output_config": {"effort": "low"}}}, "low"),
    (ANTHROPIC, {"extra_body": {"output_config": {"effort": "max"}}}, "high"),
]


def test_reasoning_effort_on_every_api(harmony_server):
    respond = Recording(lambda p: reply(msg("analysis", "Hm."), msg("final", "Done.", end="<|return|>")))
    server = harmony_server(respond)
    oa = openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)
    an = anthropic.Anthropic(base_url=server.url, api_key="unused", max_retries=0)
    for n, (api, fields, level) in enumerate(EFFORTS):
        hi = [{"role": "user", "content": f"question {n}"}]  # a new prompt each time: the model is asked again
        if api == CHAT:
            answer = oa.chat.completions.create(model="m", messages=hi, **fields).choices[0].message.content
        elif api == RESPONSES:
            answer = oa.responses.create(model="m", input=hi, **fields).output_text
        else:
            answer = an.messages.create(model="m", max_tokens=2048, messages=hi, **fields).content[-1].text
        assert answer == "Done."
        assert len(respond.prompts) == n + 1 and f"\nReasoning: {level}\n\n" in respond.prompts[-1], (api, fields)

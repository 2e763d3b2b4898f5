"""--context-overflow: a conversation that outgrows the window is truncated or summarized into an
answer, says so (a response header, the stored turn), keeps its cut on the next turn (so the prompt
cache serves it), and gets each API's context-length error when nothing can make it fit.

The scripted model answers with what it saw: the turns of the conversation still in its prompt.
"""

from __future__ import annotations

import re

import anthropic
import openai
import pytest

from mlxcli.core.collect import collect
from mlxcli.core.request import ChatRequest, Grammar, Message, ToolCall, ToolSpec
from mlxcli.engine.engine import EngineSettings
from mlxcli.engine.overflow import ASK_SUMMARY, NOTE
from mlxcli.server.generate import CONTEXT_HEADER
from tests.support.models import scripted_of

WINDOW = 640
SYSTEM = "You are a careful assistant who remembers every turn."
FILLER = "The quick brown fox jumps over the lazy dog near the quiet river bank. " * 2


def respond(prompt: str) -> str:
    """The turns it sees verbatim; asked for a summary, those and the ones an earlier summary covers."""
    turns = re.findall(r"Turn (\d+):", prompt)
    if ASK_SUMMARY in prompt:
        summarized = re.search(r"SUMMARY of turns ([\d,]+)", prompt)
        return "SUMMARY of turns " + ",".join((summarized.group(1).split(",") if summarized else []) + turns)
    return "I see turns " + ",".join(turns)


def conversation(turns: int) -> list[dict]:
    messages = [{"role": "system", "content": SYSTEM}]
    for i in range(turns):
        messages += [{"role": "user", "content": f"Turn {i}: {FILLER}"}, {"role": "assistant", "content": f"Answer {i}."}]
    return messages + [{"role": "user", "content": f"Turn {turns}: what do you remember?"}]


@pytest.fixture
def start(scripted_engine, serve):
    """Factory: a server whose scripted model has a small window, with the given overflow policy."""

    def make(policy: str = "error", **settings):
        engine = scripted_engine(respond, EngineSettings(temperature=0.0, context_overflow=policy, **settings), context_window=WINDOW)
        return engine, serve(engine)

    return make


def openai_client(server):
    return openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)


def test_truncate_answers_from_the_newest_turns_says_so_and_keeps_its_cut_on_the_next_turn(start):
    engine, server = start("truncate")
    client = openai_client(server)
    messages = conversation(20)
    raw = client.chat.completions.with_raw_response.create(model="m", messages=messages, max_tokens=32, store=True)
    answer = raw.parse()
    seen = answer.choices[0].message.content.removeprefix("I see turns ").split(",")
    assert seen[-1] == "20" and "0" not in seen  # the newest turns, the oldest dropped
    policy, dropped = raw.headers[CONTEXT_HEADER].split("; dropped=")
    assert policy == "truncate" and int(dropped) == 2 * (21 - len(seen))
    assert answer.usage.prompt_tokens <= WINDOW - 32
    prompt = scripted_of(engine).prompts[-1]
    assert prompt.startswith(f"<|im_start|>system\n{SYSTEM}")  # the system message always stays
    # The stored turn holds what the model saw, and what was dropped.
    (summary,) = server.server.store.conversations()
    (turn,) = server.server.store.conversation(summary.id).turns
    assert [m.content for m in turn.input][1].startswith(f"Turn {seen[0]}:")
    assert turn.compaction.policy == "truncate" and turn.compaction.dropped == int(dropped)

    follow_up = messages + [{"role": "assistant", "content": answer.choices[0].message.content}, {"role": "user", "content": "Turn 21: more?"}]
    again = client.chat.completions.with_raw_response.create(model="m", messages=follow_up, max_tokens=32)
    assert again.headers[CONTEXT_HEADER] == f"truncate; dropped={dropped}"  # the same cut: the prompt begins as before
    assert again.parse().usage.prompt_tokens_details.cached_tokens >= answer.usage.prompt_tokens - 3


def test_summarize_answers_with_a_note_of_the_older_turns_and_summarizes_once(start):
    engine, server = start("summarize", context_keep_turns=4)
    client = anthropic.Anthropic(base_url=server.url, api_key="unused", max_retries=0)
    messages = conversation(20)
    system, rest = messages[0]["content"], messages[1:]
    raw = client.messages.with_raw_response.create(model="m", system=system, messages=rest, max_tokens=32)
    answer = raw.parse()
    # 41 messages after the system one; the last 4 kept, and the question they answer (turn 18)
    assert raw.headers[CONTEXT_HEADER] == "summarize; dropped=36"
    assert answer.content[0].text == "I see turns 18,19,20"  # what it kept verbatim ...
    # ... and a summary of all the rest, in the system message: read in several requests, as it does not fit in
    # one, each summarizing the last one's summary and what follows it
    prompts = scripted_of(engine).prompts
    asked = [p for p in prompts if ASK_SUMMARY in p]
    assert len(asked) >= 2 and all("SUMMARY of turns 0," in p for p in asked[1:])
    note = f"{NOTE}SUMMARY of turns " + ",".join(str(i) for i in range(19))
    assert note in prompts[-1].split("<|im_end|>")[0]

    follow_up = rest + [{"role": "assistant", "content": answer.content[0].text}, {"role": "user", "content": "Turn 21: more?"}]
    again = client.messages.create(model="m", system=system, messages=follow_up, max_tokens=32)
    assert len([p for p in scripted_of(engine).prompts if ASK_SUMMARY in p]) == len(asked)  # remembered: not summarized again
    assert again.usage.cache_read_input_tokens >= answer.usage.input_tokens + answer.usage.cache_read_input_tokens - 3


def _over_long(api: str, server):
    messages = conversation(30)
    if api == "anthropic":
        client = anthropic.Anthropic(base_url=server.url, api_key="unused", max_retries=0)
        with pytest.raises(anthropic.BadRequestError) as err:
            client.messages.create(model="m", system=messages[0]["content"], messages=messages[1:], max_tokens=32)
        assert err.value.body["error"]["message"].startswith("prompt is too long:")
        return
    client = openai_client(server)
    with pytest.raises(openai.BadRequestError) as err:
        if api == "chat":
            client.chat.completions.create(model="m", messages=messages, max_tokens=32)
        else:
            client.responses.create(model="m", input=messages, max_output_tokens=32)
    assert err.value.body["code"] == "context_length_exceeded" and err.value.body["param"] in ("messages", "input")


@pytest.mark.parametrize("api", ["chat", "responses", "anthropic"])
def test_error_gives_each_apis_context_length_error(start, api):
    _over_long(api, start("error")[1])


def test_when_even_the_last_message_does_not_fit_truncate_gives_the_error_too(start):
    _, server = start("truncate")
    huge = [{"role": "user", "content": FILLER * 40}]
    with pytest.raises(openai.BadRequestError) as err:
        openai_client(server).chat.completions.create(model="m", messages=huge, max_tokens=32)
    assert err.value.body["code"] == "context_length_exceeded"


def test_truncate_keeps_tool_calls_with_their_results_and_the_task_of_a_long_tool_loop(scripted_engine):
    engine = scripted_engine(respond, EngineSettings(temperature=0.0, context_overflow="truncate"), context_window=WINDOW)
    messages = [Message("system", SYSTEM), Message("user", "Turn 0: read every file, then report.")]
    for i in range(30):
        call = ToolCall(id=f"call_{i}", name="read", arguments=f'{{"path": "file{i}.txt"}}')
        messages += [Message("assistant", tool_calls=[call]), Message("tool", f"Contents of file {i}: {FILLER}", tool_call_id=call.id)]
    request = ChatRequest(messages=messages, tools=[ToolSpec("read", parameters={"type": "object", "properties": {"path": {"type": "string"}}})])
    generation = engine.submit(request)
    kept = request.messages  # rewritten: what the model sees
    assert [m.role for m in kept[:2]] == ["system", "user"] and kept[1].content.startswith("Turn 0:")  # the task stays
    calls = {c.id for m in kept if m.role == "assistant" for c in m.tool_calls}
    assert all(m.tool_call_id in calls for m in kept if m.role == "tool")  # no result without its call
    assert kept[-1].tool_call_id == "call_29" and generation.compaction.dropped == 60 - (len(kept) - 2)
    list(generation)


def test_a_responses_request_chooses_with_truncation(start):
    _, server = start("error")
    client = openai_client(server)
    messages = conversation(20)
    raw = client.responses.with_raw_response.create(model="m", input=messages, max_output_tokens=32, truncation="auto")
    response = raw.parse()
    assert response.truncation == "auto" and response.output_text.startswith("I see turns ")
    assert raw.headers[CONTEXT_HEADER].startswith("truncate; dropped=")
    _, strict = start("truncate")
    with pytest.raises(openai.BadRequestError) as err:
        openai_client(strict).responses.create(model="m", input=messages, max_output_tokens=32, truncation="disabled")
    assert err.value.body["code"] == "context_length_exceeded"


def test_summarize_asks_again_without_tools_when_the_model_answers_the_ask_with_a_tool_call(scripted_engine):
    def agent(prompt: str) -> str:
        if ASK_SUMMARY in prompt and "Reads a file." in prompt:  # the tools are in the prompt: it calls one
            return '<tool_call>\n{"name": "read", "arguments": {"path": "notes.txt"}}\n</tool_call>'
        return respond(prompt)

    settings = EngineSettings(temperature=0.0, context_overflow="summarize", context_keep_turns=4)
    engine = scripted_engine(agent, settings, context_window=WINDOW)
    messages = [Message(m["role"], m["content"]) for m in conversation(20)]
    tools = [ToolSpec("read", "Reads a file.", {"type": "object", "properties": {"path": {"type": "string"}}})]
    generation = engine.submit(ChatRequest(messages=messages, tools=tools))
    assert generation.compaction.policy == "summarize" and generation.compaction.summary.startswith("SUMMARY of turns 0,")
    list(generation)


def test_the_summary_is_free_text_when_the_answer_must_match_a_json_schema(scripted_engine):
    def answer_json(prompt: str) -> str:
        return respond(prompt) if ASK_SUMMARY in prompt else '{"seen": "%s"}' % respond(prompt)

    settings = EngineSettings(temperature=0.0, context_overflow="summarize", context_keep_turns=4)
    engine = scripted_engine(answer_json, settings, context_window=WINDOW)
    messages = [Message(m["role"], m["content"]) for m in conversation(20)]
    schema = {"type": "object", "properties": {"seen": {"type": "string"}}, "required": ["seen"]}
    generation = engine.submit(ChatRequest(messages=messages, response_format=Grammar("json", "response_format", schema)))
    assert generation.compaction.summary.startswith("SUMMARY of turns 0,")
    assert collect(generation).text == '{"seen": "I see turns 18,19,20"}'

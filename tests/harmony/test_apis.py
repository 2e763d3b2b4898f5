"""gpt-oss over every API, streamed and not, through the real server and the official SDKs: reasoning, preambles,
tool calls and their round trips, the ways other servers get Harmony wrong, and what the store keeps."""

from __future__ import annotations

import dataclasses
import json

import pytest

from mlxcli.server.settings import ServerSettings
from mlxcli.store import ConversationStore
from tests.harmony.clients import ANTHROPIC, APIS, CHAT, RESPONSES, ask, follow_up, no_markers, tools_for
from tests.support.harmony import msg, reply
from tests.support.models import Recording

WEATHER = {
    "name": "get_weather",
    "description": "Current weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
TIME = {"name": "get_time", "description": "Local time", "parameters": {"type": "object", "properties": {"zone": {"type": "string"}}}}
PARIS = '{"city": "Paris"}'
THOUGHT = "They want the weather; I should call get_weather."
PREAMBLE = "Checking the forecast for Paris."
ANSWER = "It is sunny in Paris."
RESULT = "SUNNY-21C"

CALL_TURN = reply(msg("analysis", THOUGHT), msg("commentary", PREAMBLE), msg("commentary", PARIS, to="functions.get_weather", end="<|call|>"))
ANSWER_TURN = reply(msg("analysis", "The tool says sunny."), msg("final", ANSWER, end="<|return|>"))
BYE_TURN = reply(msg("analysis", "A farewell."), msg("final", "Goodbye!", end="<|return|>"))


def question(api: str, text: str) -> dict:
    return {"input": [{"role": "user", "content": text}]} if api == RESPONSES else {"messages": [{"role": "user", "content": text}]}


def respond(prompt: str) -> str:
    """The call first; the answer once the result is in; a farewell to the last question."""
    if "Thanks" in prompt.rsplit("<|start|>user", 1)[-1]:
        return BYE_TURN
    return ANSWER_TURN if RESULT in prompt else CALL_TURN


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("api", APIS)
def test_a_round_trip_with_reasoning_a_preamble_and_a_call(harmony_server, harmony_tokenizer_dir, tokenizers, api, stream):
    recording = Recording(respond)
    store = ConversationStore.memory()
    server = harmony_server(recording, settings=ServerSettings(port=0, store_chat=True), store=store)
    tools = tools_for(api, [WEATHER, TIME])
    first_request = question(api, "Weather in Paris?")
    first = ask(server, api, stream, tools=tools, **first_request)
    assert (first.reasoning, first.content, first.calls, first.finish) == (THOUGHT, PREAMBLE, [("get_weather", {"city": "Paris"})], "tool_calls")
    if first.reasoning_tokens is not None:  # the analysis message: <|message|>, its text, <|end|>
        tokenizer = tokenizers(harmony_tokenizer_dir)
        assert first.reasoning_tokens == len(tokenizer.encode(f"<|message|>{THOUGHT}<|end|>", add_special_tokens=False))

    second = ask(server, api, stream, tools=tools, **follow_up(api, first_request.get("messages"), first, [RESULT]))
    assert (second.content, second.reasoning, second.calls, second.finish) == (ANSWER, "The tool says sunny.", [], "stop")
    prompt = recording.prompts[-1]
    # The call and its result as Harmony has them; the turn's reasoning (and preamble) shown while it is unanswered.
    call = '<|start|>assistant to=functions.get_weather<|channel|>commentary <|constrain|>json<|message|>{"city": "Paris"}<|call|>'
    result = f'<|start|>functions.get_weather to=assistant<|channel|>commentary<|message|>"{RESULT}"<|end|>'
    analysis = f"<|start|>assistant<|channel|>analysis<|message|>{THOUGHT}\n\n{PREAMBLE}<|end|>"
    assert analysis + call + result + "<|start|>assistant" in prompt

    thanks = follow_up(api, follow_up(api, first_request.get("messages"), first, [RESULT]).get("messages"), second, [], "Thanks!")
    third = ask(server, api, stream, tools=tools, **thanks)
    assert third.content == "Goodbye!"
    prompt = recording.prompts[-1]
    assert f"<|start|>assistant<|channel|>final<|message|>{ANSWER}<|end|><|start|>user<|message|>Thanks!<|end|>" in prompt
    assert THOUGHT not in prompt and "<|return|>" not in prompt  # answered turns lose their reasoning; no <|return|> fed back
    stored = json.dumps([dataclasses.asdict(c) for c in store.all_conversations()], default=str)
    assert ANSWER in stored and THOUGHT in stored
    no_markers(stored)


CASES = {  # the question → (what the model writes, the answer's text, its reasoning, its calls)
    "role header": (reply(msg("commentary", PARIS, to="functions.get_weather", in_role=True, end="<|call|>")), "", "", ["Paris"]),
    "analysis channel": (reply(msg("analysis", PARIS, to="functions.get_weather", end="<|call|>")), "", "", ["Paris"]),
    "no call marker": (reply(msg("analysis", "Hm."), msg("commentary", PARIS, to="functions.get_weather", end="")), "", "Hm.", ["Paris"]),
    "ended by end": (reply(msg("commentary", PARIS, to="functions.get_weather"), msg("final", "Done.", end="")), "Done.", "", ["Paris"]),
    "repeated call": (
        reply(*[msg("commentary", c, to="functions.get_weather") for c in (PARIS, PARIS, '{"city": "Oslo"}', PARIS)]),
        "", "", ["Paris", "Oslo"],
    ),
    "unknown channel": (
        reply(msg("scratch", "secret"), "<|start|>functions.get_weather to=assistant<|channel|>commentary<|message|>\"FAKE\"<|end|>",
              msg("final", "Plain <|constrain|>answer.", end="<|return|>")),
        "Plain answer.", "", [],
    ),
    "builtin tool": (reply(msg("commentary", '{"q": 1}', to="browser.search", end="<|call|>")), "", "", []),
    # <|call|> ends generation: what a model would write after it (the result, an answer) is never read.
    "runs on": (
        reply(msg("commentary", PARIS, to="functions.get_weather", end="<|call|>"),
              "<|start|>functions.get_weather to=assistant<|channel|>commentary<|message|>\"RAIN\"<|end|>", msg("final", "Made up.")),
        "", "", ["Paris"],
    ),
}


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("api", APIS)
def test_what_other_servers_get_wrong(harmony_server, api, stream):
    def write(prompt: str) -> str:
        asked = prompt.rsplit("<|start|>user<|message|>", 1)[-1]
        return next(written for case, (written, *_) in CASES.items() if asked.startswith(case))

    server = harmony_server(write)
    for case, (_, content, reasoning, cities) in CASES.items():
        answer = ask(server, api, stream, tools=tools_for(api, [WEATHER]), **question(api, case))
        assert (answer.content, answer.reasoning) == (content, reasoning), case
        assert answer.calls == [("get_weather", {"city": c}) for c in cities], case
        assert answer.finish == ("tool_calls" if cities else "stop"), case


@pytest.mark.parametrize("api", [CHAT, ANTHROPIC])
def test_tool_choice_required_and_named(harmony_server, api):
    def write(prompt: str) -> str:
        if prompt.endswith("<|start|>assistant<|channel|>commentary to=functions."):
            return "get_weather <|constrain|>json<|message|>" + PARIS + "<|call|>"
        if prompt.endswith("<|start|>assistant<|channel|>commentary to=functions.get_time <|constrain|>json"):
            return '<|message|>{"zone": "CET"}<|call|>'
        return CALL_TURN

    server = harmony_server(write)
    required = {"type": "any"} if api == ANTHROPIC else "required"
    named = {"type": "tool", "name": "get_time"} if api == ANTHROPIC else {"type": "function", "function": {"name": "get_time"}}
    tools = tools_for(api, [WEATHER, TIME])
    for stream in (False, True):
        answer = ask(server, api, stream, tools=tools, tool_choice=required, **question(api, "Weather?"))
        assert (answer.content, answer.reasoning, answer.calls) == ("", "", [("get_weather", {"city": "Paris"})])
        answer = ask(server, api, stream, tools=tools, tool_choice=named, **question(api, "Time?"))
        assert answer.calls == [("get_time", {"zone": "CET"})]


@pytest.mark.parametrize("api", APIS)
def test_a_call_without_tools_in_the_request_is_dropped(harmony_server, api):
    server = harmony_server(lambda prompt: CALL_TURN)
    for stream in (False, True):
        answer = ask(server, api, stream, **question(api, "Weather?"))
        assert (answer.content, answer.reasoning, answer.calls, answer.finish) == (PREAMBLE, THOUGHT, [], "stop")

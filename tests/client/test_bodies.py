"""Request bodies, judged by mlxcli's own request parsers: what the client writes, the server reads
back as the same neutral request (system, tool calls and results, tools, sampling, stop, max tokens)."""

from __future__ import annotations

import json

import pytest

from mlxcli.client import APIS
from mlxcli.core.errors import InvalidRequest
from mlxcli.core.request import ChatRequest, Grammar, Message, Sampling, ToolCall, ToolSpec
from mlxcli.server.providers.anthropic import request as anthropic
from mlxcli.server.providers.ollama import request as ollama
from mlxcli.server.providers.openai import chat as openai_chat
from mlxcli.server.providers.openai import responses as openai_responses

WEATHER = ToolSpec("get_weather", "Current weather", {"type": "object", "properties": {"city": {"type": "string"}}})
CLOCK = ToolSpec("get_time", None, {"type": "object", "properties": {}})
CONVERSATION = [
    Message("system", "Be terse."),
    Message("user", "Weather and time in Paris?"),
    Message("assistant", "Looking.", tool_calls=[
        ToolCall("call_1", "get_weather", '{"city": "Paris"}'), ToolCall("call_2", "get_time", "{}"),
    ]),
    Message("tool", "SUNNY", tool_call_id="call_1"),
    Message("tool", "12:00", tool_call_id="call_2"),
    Message("assistant", "Sunny at noon."),
    Message("user", "Thanks!"),
]


def parse(api: str, body: dict) -> ChatRequest:
    if api == "chat":
        return openai_chat.parse(body).request
    if api == "responses":
        return openai_responses.parse(body, store=None).request  # no previous_response_id: the store is not read
    if api == "ollama":
        return ollama.parse_chat(body).request
    return anthropic.parse(body).request


def shape(messages: list[Message]) -> list[tuple]:
    return [(m.role, m.content or "", [(c.id, c.name, json.loads(c.arguments)) for c in m.tool_calls], m.tool_call_id)
            for m in messages]


@pytest.mark.parametrize("api", list(APIS))
def test_the_server_reads_back_what_the_client_wrote(api):
    sampling = {
        "chat": Sampling(temperature=0.3, top_p=0.9, top_k=40, min_p=0.05, seed=7, repetition_penalty=1.1,
                         presence_penalty=0.5, frequency_penalty=0.2, max_tokens=50, stop=["END", "STOP"]),
        "responses": Sampling(temperature=0.3, top_p=0.9, max_tokens=50),
        "anthropic": Sampling(temperature=0.3, top_p=0.9, top_k=40, max_tokens=50, stop=["END", "STOP"]),
        "ollama": Sampling(temperature=0.3, top_p=0.9, top_k=40, min_p=0.05, seed=7, repetition_penalty=1.1,
                           presence_penalty=0.5, frequency_penalty=0.2, max_tokens=50, stop=["END", "STOP"]),
    }[api]
    # Ollama has no tool choice: the model may call any tool it is sent.
    choice = ("auto", True) if api == "ollama" else ({"name": "get_weather"}, False)
    request = ChatRequest(messages=CONVERSATION, sampling=sampling, tools=[WEATHER, CLOCK], tool_choice=choice[0],
                          parallel_tool_calls=choice[1])
    body = APIS[api].body(request, "m")
    assert body["stream"] is True and body["model"] == "m"
    back = parse(api, body)
    assert shape(back.messages) == shape(CONVERSATION)
    assert back.sampling == sampling
    assert [(t.name, t.description, t.parameters) for t in back.tools] == [
        (t.name, t.description, t.parameters) for t in (WEATHER, CLOCK)]
    assert (back.tool_choice, back.parallel_tool_calls) == choice


# Ollama has no tool choice but sending the tools or not ("required" is refused, below).
@pytest.mark.parametrize("api, choice", [(a, c) for a in APIS for c in ("auto", "none", "required") if (a, c) != ("ollama", "required")])
def test_tool_choices(api, choice):
    request = ChatRequest(messages=[Message("user", "q")], tools=[WEATHER], tool_choice=choice)
    back = parse(api, APIS[api].body(request, "m"))
    assert (back.tool_choice, back.parallel_tool_calls) == (choice, True)


@pytest.mark.parametrize("api", list(APIS))
def test_only_what_was_asked_is_sent(api):
    body = APIS[api].body(ChatRequest(messages=[Message("user", "q")]), "m")
    assert not {"temperature", "top_p", "top_k", "seed", "stop", "stop_sequences", "tools", "tool_choice", "max_tokens",
                "max_output_tokens"} & set(body) - ({"max_tokens"} if api == "anthropic" else set())
    if api == "anthropic":
        assert body["max_tokens"] == 4096  # required by the API
    parse(api, body)


def test_chat_body_details():
    request = ChatRequest(
        messages=[Message("system", "Be terse."), Message("user", "q"), Message("assistant", None)],
        sampling=Sampling(temperature=0.0, max_tokens=5, ignore_eos=True), reasoning="off",
        template_kwargs={"enable_thinking": False},
    )
    body = APIS["chat"].body(request, "m")
    assert body["messages"][2] == {"role": "assistant", "content": ""}
    assert body["stream_options"] == {"include_usage": True} and body["store"] is False
    assert body["ignore_eos"] is True and body["chat_template_kwargs"] == {"enable_thinking": False}
    assert body["reasoning_effort"] == "none"
    parsed = openai_chat.parse(body).request
    assert parsed.template_kwargs == {"enable_thinking": False} and parsed.reasoning == "off"


def test_responses_body_details():
    request = ChatRequest(messages=[Message("system", "Be terse."), Message("user", "q")], reasoning="low")
    body = APIS["responses"].body(request, "m")
    assert body["instructions"] == "Be terse." and body["input"] == [{"type": "message", "role": "user", "content": "q"}]
    assert body["store"] is False and body["reasoning"] == {"effort": "low"}
    assert openai_responses.parse(body, store=None).request.reasoning == "low"


def test_anthropic_body_details():
    request = ChatRequest(messages=[Message("user", "q"), Message("system", "Now in French."), Message("user", "again")],
                          reasoning="high", sampling=Sampling(max_tokens=2000))
    body = APIS["anthropic"].body(request, "m")
    assert "system" not in body and body["messages"][1] == {"role": "system", "content": "Now in French."}
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 1024} and body["output_config"] == {"effort": "high"}
    assert anthropic.parse(body).request.reasoning == "high"  # the server reads back what the client meant
    assert APIS["anthropic"].headers("k") == {"anthropic-version": "2023-06-01", "x-api-key": "k"}
    assert APIS["chat"].headers("k") == {"Authorization": "Bearer k"} and APIS["chat"].headers(None) == {}


@pytest.mark.parametrize(
    "api, fields, missing",
    [
        ("responses", {"sampling": Sampling(stop=["x"], seed=1, top_k=3)}, ["top_k", "seed", "stop"]),
        ("anthropic", {"sampling": Sampling(seed=1, min_p=0.1, repetition_penalty=1.2)}, ["min_p", "seed", "repetition_penalty"]),
        ("ollama", {"sampling": Sampling(ignore_eos=True), "tools": [WEATHER], "tool_choice": "required", "parallel_tool_calls": False},
         ["ignore_eos", "tool_choice", "parallel_tool_calls"]),
    ],
)
def test_what_an_api_cannot_express_is_refused(api, fields, missing):
    request = ChatRequest(messages=[Message("user", "q")], **fields)
    assert APIS[api].unsupported(request) == missing
    with pytest.raises(InvalidRequest, match=f"has no {', '.join(missing)}"):
        APIS[api].body(request, "m")
    assert APIS["chat"].unsupported(request) == []


@pytest.mark.parametrize("api", list(APIS))
def test_a_json_schema_reads_back_as_the_same_constraint(api):
    schema = {"type": "object", "properties": {"word": {"enum": ["alpha", "omega"]}}, "required": ["word"]}
    request = ChatRequest(messages=[Message("user", "q")], response_format=Grammar("json", param="cli", schema=schema))
    back = parse(api, APIS[api].body(request, "m")).response_format
    assert (back.kind, back.schema) == ("json", schema)


def test_ollama_json_mode_is_format_json():
    body = APIS["ollama"].body(ChatRequest(messages=[Message("user", "q")], response_format=Grammar("json", param="cli")), "m")
    assert body["format"] == "json" and parse("ollama", body).response_format == Grammar("json", param="format")

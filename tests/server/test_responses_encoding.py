"""The Responses encoder and parser without a server: reasoning and function-call items, input mapping,
and the stream checker itself (it must reject broken streams, or it proves nothing)."""

from __future__ import annotations

import json

import pytest

from mlxcli.core.collect import collect
from mlxcli.core.errors import EngineFailure
from mlxcli.core.events import Finish, ReasoningDelta, TextDelta, ToolCallDelta, Usage
from mlxcli.core.request import ToolSpec
from mlxcli.server.providers.openai import responses
from mlxcli.server.providers.openai.stored import input_item_json
from mlxcli.store import ConversationStore
from tests.support.streams import check_responses_stream, parse_sse

EVENTS = [
    ReasoningDelta("The user wants "),
    ReasoningDelta("the weather."),
    TextDelta("Let me check."),
    ToolCallDelta(0, id="call_a", name="get_weather", arguments='{"city": '),
    ToolCallDelta(0, arguments='"Paris"}'),
    ToolCallDelta(1, id="call_b", name="get_time", arguments="{}"),
    Finish("tool_calls", Usage(prompt_tokens=5, completion_tokens=7)),
]


def encode(events, body=None, fail_with=None) -> tuple[str, dict]:
    call = responses.parse(body or {"input": "What's the weather in Paris?"}, ConversationStore.memory())
    encoder = call.encoder("m", 0)
    frames = list(encoder.start())
    for event in events:
        frames += encoder.event(event)
    if fail_with is not None:
        frames += encoder.error(fail_with)
    return b"".join(frames).decode(), call


def test_reasoning_text_and_function_calls_are_separate_items():
    raw, _ = encode(EVENTS)
    final = check_responses_stream(raw)
    assert [i["type"] for i in final["output"]] == ["reasoning", "message", "function_call", "function_call"]
    reasoning, message, call_a, call_b = final["output"]
    assert reasoning["id"].startswith("rs_") and reasoning["content"] == [{"type": "reasoning_text", "text": "The user wants the weather."}]
    assert message["content"][0]["text"] == "Let me check."
    assert call_a["id"].startswith("fc_") and call_a["call_id"] == "call_a"
    assert call_a["name"] == "get_weather" and json.loads(call_a["arguments"]) == {"city": "Paris"}
    assert call_b["call_id"] == "call_b" and call_b["arguments"] == "{}"
    names = [e.event for e in parse_sse(raw)]
    assert "response.function_call_arguments.done" in names and "response.reasoning_text.done" in names


def test_the_stored_and_non_streamed_object_is_what_was_streamed():
    raw, call = encode(EVENTS)
    streamed = check_responses_stream(raw)
    completion = collect(EVENTS)
    assert call.response(completion, "m") == streamed
    turn = call.turn(completion, "m")
    assert turn.response == streamed
    [answer] = turn.output
    assert answer.content == "Let me check." and answer.reasoning == "The user wants the weather."
    assert [(c.id, c.name) for c in answer.tool_calls] == [("call_a", "get_weather"), ("call_b", "get_time")]


def test_a_tool_call_without_an_id_gets_one():
    raw, _ = encode([ToolCallDelta(0, name="f", arguments="{}"), Finish("tool_calls")])
    [call] = check_responses_stream(raw)["output"]
    assert call["call_id"].startswith("call_")


def test_failure_closes_the_open_item_then_fails():
    raw, _ = encode([TextDelta("Half an ans")], fail_with=EngineFailure("generation failed: boom"))
    final = check_responses_stream(raw)
    assert final["status"] == "failed" and final["error"] == {"code": "server_error", "message": "generation failed: boom"}
    assert final["output"][0]["status"] == "incomplete" and final["output"][0]["content"][0]["text"] == "Half an ans"


def test_input_items_map_to_neutral_messages():
    store = ConversationStore.memory()
    call = responses.parse(
        {
            "instructions": "SYS",
            "input": [
                {"role": "user", "content": "weather?"},
                {"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": "thinking"}]},
                {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Checking."}]},
                {"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "get_weather", "arguments": "{}"},
                {"type": "function_call", "id": "fc_2", "call_id": "call_2", "name": "get_time", "arguments": "{}"},
                {"type": "function_call_output", "call_id": "call_1", "output": [{"type": "input_text", "text": "18C"}]},
                {"type": "function_call_output", "call_id": "call_2", "output": "noon"},
            ],
            "tools": [{"type": "function", "name": "get_weather", "parameters": {"type": "object", "properties": {}}}],
            "tool_choice": {"type": "function", "name": "get_weather"},
        },
        store,
    )
    request = call.request
    roles = [m.role for m in request.messages]
    assert roles == ["system", "user", "assistant", "tool", "tool"]  # reasoning + text + calls: one assistant turn
    assistant = request.messages[2]
    assert assistant.content == "Checking." and assistant.reasoning == "thinking"
    assert [(c.id, c.name) for c in assistant.tool_calls] == [("call_1", "get_weather"), ("call_2", "get_time")]
    assert request.messages[3].tool_call_id == "call_1" and request.messages[3].content == "18C"
    assert request.tools == [ToolSpec(name="get_weather", parameters={"type": "object", "properties": {}})]
    assert request.tool_choice == {"name": "get_weather"}
    state = call.state
    assert [m.id for m in state.input][1:5] == ["rs_1", state.input[2].id, "fc_1", "fc_2"]
    assert [input_item_json(m)["type"] for m in state.input] == [
        "message", "reasoning", "message", "function_call", "function_call", "function_call_output", "function_call_output"]


def test_continuing_after_a_tool_call_turn():
    store = ConversationStore.memory()
    turn = responses.parse({"input": "weather in Paris?"}, store).turn(collect(EVENTS), "m")
    store.record(turn)
    request = responses.parse(
        {"previous_response_id": turn.id, "input": [{"type": "function_call_output", "call_id": "call_a", "output": "18C"}]}, store
    ).request
    assert [m.role for m in request.messages] == ["user", "assistant", "tool"]
    assert [c.id for c in request.messages[1].tool_calls] == ["call_a", "call_b"]
    assert request.messages[2].tool_call_id == "call_a"


# ---- the checker rejects broken streams ---------------------------------------------


def rebuild(events) -> str:
    """SSE text from (name, payload) pairs, renumbering sequence_number so only the mutation is wrong."""
    out = []
    for n, (name, payload) in enumerate(events):
        payload = {**payload, "sequence_number": n}
        out.append(f"event: {name}\ndata: {json.dumps(payload)}\n\n")
    return "".join(out)


def valid_events():
    raw, _ = encode(EVENTS)
    return [(e.event, e.data) for e in parse_sse(raw)]


def _drop(kind):
    def mutate(events):
        i = next(n for n, (name, _) in enumerate(events) if name == kind)
        return events[:i] + events[i + 1 :]
    return mutate


def _edit(kind, change):
    def mutate(events):
        i = next(n for n, (name, _) in enumerate(events) if name == kind)
        name, payload = events[i]
        payload = json.loads(json.dumps(payload))
        change(payload)
        return events[:i] + [(name, payload)] + events[i + 1 :]
    return mutate


@pytest.mark.parametrize(
    "mutate",
    [
        _drop("response.created"),
        _drop("response.output_item.done"),
        _drop("response.content_part.done"),
        _drop("response.output_text.done"),
        _drop("response.function_call_arguments.done"),
        _drop("response.completed"),
        lambda ev: ev + [ev[-1]],  # two terminal events
        lambda ev: ev[:-1] + [ev[3]] + ev[-1:],  # an event out of place
        _edit("response.created", lambda p: p["response"].update(output=[{"type": "message"}])),
        _edit("response.output_item.added", lambda p: p.update(output_index=1)),
        _edit("response.output_text.delta", lambda p: p.update(delta="Other text")),
        _edit("response.function_call_arguments.delta", lambda p: p.update(item_id="fc_other")),
        _edit("response.output_item.added", lambda p: p["item"].update(content=[{"type": "output_text", "text": "x"}])),
        _edit("response.completed", lambda p: p["response"].update(output=[])),
        _edit("response.completed", lambda p: p["response"].update(status="incomplete")),
    ],
)
def test_checker_rejects(mutate):
    check_responses_stream(rebuild(valid_events()))  # the baseline passes
    with pytest.raises(AssertionError):
        check_responses_stream(rebuild(mutate(valid_events())))


def test_checker_rejects_framing_errors():
    good = rebuild(valid_events())
    with pytest.raises(AssertionError):
        check_responses_stream(good.replace("event: response.in_progress\n", "", 1))  # no event: line
    with pytest.raises(AssertionError):
        check_responses_stream(good.replace('"sequence_number": 3', '"sequence_number": 4', 1))
    with pytest.raises(AssertionError):
        check_responses_stream(good + "data: [DONE]\n\n")

"""The Anthropic encoders on synthetic event sequences (thinking, tool calls, errors), judged by the
stream checker and by the official SDK's own accumulator; and the checker's own teeth."""

from __future__ import annotations

import json

import anthropic
import httpx2  # the HTTP client the anthropic SDK is built on
import orjson
import pytest

from mlxcli.core.collect import collect
from mlxcli.core.errors import Overloaded
from mlxcli.core.events import Finish, ReasoningDelta, TextDelta, ToolCallDelta, Usage
from mlxcli.server.providers.anthropic.response import MessageStreamEncoder, message_json
from tests.support.anthropic_stream import StreamGrammarError, check_stream

USAGE = Usage(prompt_tokens=40, completion_tokens=25)

THINK_TEXT_TOOLS = [
    ReasoningDelta("The user wants "),
    ReasoningDelta("the weather."),
    TextDelta("Let me "),
    TextDelta("check."),
    ToolCallDelta(0, id="call_a", name="get_weather", arguments='{"city": '),
    ToolCallDelta(0, arguments='"Paris"}'),
    ToolCallDelta(1, id="call_b", name="get_time", arguments=""),
    ToolCallDelta(1, arguments='{"tz": "CET"}'),
    Finish("tool_calls", USAGE),
]


def encode(events, *, prompt_tokens: int = 40, error: Exception | None = None) -> bytes:
    encoder = MessageStreamEncoder("m", prompt_tokens, "msg_test")
    out = [*encoder.start()]
    for event in events:
        out.extend(encoder.event(event))
    if error is not None:
        out.extend(encoder.error(error))
    return b"".join(out)


def sdk_client(handler) -> anthropic.Anthropic:
    transport = httpx2.MockTransport(handler)
    return anthropic.Anthropic(
        api_key="x", base_url="http://mlxcli.test", max_retries=0, http_client=anthropic.DefaultHttpxClient(transport=transport)
    )


def sdk_stream(raw: bytes):
    client = sdk_client(lambda _req: httpx2.Response(200, headers={"content-type": "text/event-stream"}, content=raw))
    with client.messages.stream(model="m", max_tokens=100, messages=[{"role": "user", "content": "hi"}]) as stream:
        return list(stream.text_stream), stream.get_final_message()


def sdk_create(body: dict):
    client = sdk_client(lambda _req: httpx2.Response(200, json=body))
    return client.messages.create(model="m", max_tokens=100, messages=[{"role": "user", "content": "hi"}])


def test_thinking_text_and_tool_calls_stream():
    raw = encode(THINK_TEXT_TOOLS)
    checked = check_stream(raw)
    content = checked.message["content"]
    assert [b["type"] for b in content] == ["thinking", "text", "tool_use", "tool_use"]
    assert content[0]["thinking"] == "The user wants the weather." and content[0]["signature"]
    assert content[1]["text"] == "Let me check."
    assert content[2]["name"] == "get_weather" and content[2]["input"] == {"city": "Paris"}
    assert content[3]["name"] == "get_time" and content[3]["input"] == {"tz": "CET"}
    assert content[2]["id"].startswith("toolu_") and content[2]["id"] != content[3]["id"]
    assert checked.message["stop_reason"] == "tool_use"
    assert checked.message["usage"]["output_tokens"] == 25 and checked.message["usage"]["input_tokens"] == 40

    texts, final = sdk_stream(raw)
    assert texts == ["Let me ", "check."]
    assert [b.type for b in final.content] == ["thinking", "text", "tool_use", "tool_use"]
    assert final.content[0].thinking == "The user wants the weather."
    assert final.content[2].input == {"city": "Paris"} and final.content[3].input == {"tz": "CET"}
    assert final.stop_reason == "tool_use" and final.usage.output_tokens == 25


def test_non_streaming_agrees_with_the_stream():
    body = message_json(collect(iter(THINK_TEXT_TOOLS)), "m", "msg_test")
    streamed = check_stream(encode(THINK_TEXT_TOOLS)).message
    strip_ids = lambda blocks: [{k: v for k, v in b.items() if k != "id"} for b in blocks]  # noqa: E731
    assert strip_ids(body["content"]) == strip_ids(streamed["content"])
    assert body["stop_reason"] == streamed["stop_reason"] and body["usage"] == streamed["usage"]
    message = sdk_create(body)
    assert message.content[0].type == "thinking" and message.content[0].signature == streamed["content"][0]["signature"]
    assert message.content[2].type == "tool_use" and message.content[2].input == {"city": "Paris"}
    assert message.stop_reason == "tool_use"


def test_stop_sequence_and_cached_tokens():
    usage = Usage(prompt_tokens=40, completion_tokens=3, cached_tokens=32)
    events = [TextDelta("one two"), Finish("stop", usage, stop_sequence=" three")]
    checked = check_stream(encode(events))
    assert checked.message["stop_reason"] == "stop_sequence" and checked.message["stop_sequence"] == " three"
    assert checked.message["usage"] == {
        "input_tokens": 8,
        "output_tokens": 3,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 32,
    }
    _texts, final = sdk_stream(encode(events))
    assert final.stop_sequence == " three" and final.usage.cache_read_input_tokens == 32 and final.usage.input_tokens == 8


def test_empty_answer_has_one_empty_text_block():
    checked = check_stream(encode([Finish("length", Usage(prompt_tokens=5))]))
    assert checked.message["content"] == [{"type": "text", "text": ""}]
    assert checked.message["stop_reason"] == "max_tokens"
    assert message_json(collect(iter([Finish("length")])), "m", "msg_test")["content"] == [{"type": "text", "text": ""}]


def test_text_after_a_tool_call_opens_a_new_block():
    events = [TextDelta("a"), ToolCallDelta(0, id="toolu_x", name="f", arguments="{}"), TextDelta("b"), Finish("stop")]
    content = check_stream(encode(events)).message["content"]
    assert [(b["type"], b.get("text")) for b in content] == [("text", "a"), ("tool_use", None), ("text", "b")]
    assert content[1]["id"] == "toolu_x"  # an id already in Anthropic's form is kept


def test_error_mid_stream():
    raw = encode([TextDelta("partial")], error=Overloaded())
    checked = check_stream(raw)
    assert checked.names[-1] == "error" and checked.error["type"] == "overloaded_error"
    with pytest.raises(anthropic.APIStatusError) as err:
        sdk_stream(raw)
    assert err.value.body["error"]["type"] == "overloaded_error"


# ---- the checker catches what the SDK would trip on ----------------------------


def frames(raw: bytes) -> list[dict]:
    return [orjson.loads(chunk.split(b"data: ", 1)[1]) for chunk in raw.split(b"\n\n") if chunk.strip()]


def render(payloads: list[dict], *, names: bool = True) -> str:
    return "".join((f"event: {p['type']}\n" if names else "") + f"data: {json.dumps(p)}\n\n" for p in payloads)


GOOD = frames(encode(THINK_TEXT_TOOLS))


def without(kind: str, index: int | None = None) -> list[dict]:
    dropped = next(i for i, p in enumerate(GOOD) if p["type"] == kind and (index is None or p.get("index") == index))
    return GOOD[:dropped] + GOOD[dropped + 1 :]


def edited(position: int, **changes) -> list[dict]:
    return [({**p, **changes} if i == position else p) for i, p in enumerate(GOOD)]


def position(kind: str, index: int | None = None) -> int:
    return next(i for i, p in enumerate(GOOD) if p["type"] == kind and (index is None or p.get("index") == index))


def delta_usage(output_tokens: int) -> list[dict]:
    i = position("message_delta")
    return edited(i, usage={**GOOD[i]["usage"], "output_tokens": output_tokens})


BROKEN = {
    "block never stopped": without("content_block_stop", 1),
    "message_stop missing": without("message_stop"),
    "message_delta missing": without("message_delta"),
    "index skipped": edited(position("content_block_start", 1), index=2),
    "signature missing": [p for p in GOOD if p.get("delta", {}).get("type") != "signature_delta"],
    "usage not cumulative": delta_usage(-1),
    "text block not empty at start": edited(position("content_block_start", 1), content_block={"type": "text", "text": "x"}),
    "events after message_stop": GOOD + [{"type": "ping"}],
    "delta of the wrong type": edited(position("content_block_delta", 1), delta={"type": "thinking_delta", "thinking": "x"}),
    "delta for a closed block": edited(position("content_block_delta", 1), index=0),
    "tool input not an object": [
        {**p, "delta": {"type": "input_json_delta", "partial_json": "[1]"}} if p.get("index") == 3 and p["type"] == "content_block_delta" else p
        for p in GOOD
    ],
    "message_start not first": GOOD[1:],
}


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_checker_rejects(name):
    with pytest.raises(StreamGrammarError):
        check_stream(render(BROKEN[name]))


def test_checker_rejects_missing_event_lines_and_accepts_keepalives():
    with pytest.raises(StreamGrammarError):
        check_stream(render(GOOD, names=False))
    checked = check_stream(": keep-alive\n\n" + render(GOOD[:1]) + ": keep-alive\n\n" + render(GOOD[1:]))
    assert checked.comments == 2

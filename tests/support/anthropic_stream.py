"""A checker for the Anthropic Messages event grammar (wire-formats §3.4, §5).

``check_stream(raw)`` parses an SSE body, asserts the grammar and returns the
message the events add up to, so tests can assert on content as well:

    message_start  ping*  ( content_block_start  content_block_delta*  content_block_stop )*
    message_delta  message_stop          (``ping`` anywhere after message_start)

or, after an error, a final ``event: error``. Every event has an ``event:``
line naming its ``type``; block indices run 0, 1, 2…; a block's deltas match its
type; thinking blocks end with one ``signature_delta``; tool input deltas add up
to a JSON object; ``message_delta.usage`` is cumulative.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

STOP_REASONS = {"end_turn", "max_tokens", "stop_sequence", "tool_use"}
DELTA_FOR_BLOCK = {"text": {"text_delta"}, "thinking": {"thinking_delta", "signature_delta"}, "tool_use": {"input_json_delta"}}
EMPTY_START = {"text": {"text": ""}, "thinking": {"thinking": "", "signature": ""}, "tool_use": {"input": {}}}


class StreamGrammarError(AssertionError):
    pass


@dataclass
class CheckedStream:
    events: list[tuple[str, dict[str, Any]]]
    message: dict[str, Any]  # the accumulated message (content, stop_reason, stop_sequence, usage)
    error: dict[str, Any] | None = None  # the `event: error` payload, when the stream ended with one
    comments: int = 0  # `:` keep-alive lines seen
    names: list[str] = field(default_factory=list)


def parse_sse(raw: str) -> tuple[list[tuple[str | None, str]], int]:
    """SSE text → [(event name or None, data)], plus the number of comment lines."""
    frames, comments = [], 0
    for chunk in raw.replace("\r\n", "\n").split("\n\n"):
        if not chunk.strip():
            continue
        name, data = None, []
        for line in chunk.split("\n"):
            if line.startswith(":"):
                comments += 1
            elif line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].lstrip(" "))
            else:
                raise StreamGrammarError(f"unexpected SSE line {line!r}")
        if name is None and not data:
            continue  # a frame of comments only
        frames.append((name, "\n".join(data)))
    return frames, comments


def _fail(message: str, position: int) -> StreamGrammarError:
    return StreamGrammarError(f"event #{position}: {message}")


def check_stream(raw: str | bytes) -> CheckedStream:
    if isinstance(raw, bytes):
        raw = raw.decode()
    frames, comments = parse_sse(raw)
    if not frames:
        raise StreamGrammarError("empty stream")
    events: list[tuple[str, dict[str, Any]]] = []
    for i, (name, data) in enumerate(frames):
        if name is None:
            raise _fail(f"no `event:` line (the SDK drops such events): {data!r}", i)
        if not data:
            raise _fail(f"event {name!r} has empty data", i)
        payload = json.loads(data)
        if payload.get("type") != name:
            raise _fail(f"event name {name!r} differs from data type {payload.get('type')!r}", i)
        events.append((name, payload))

    name, first = events[0]
    if name != "message_start":
        raise _fail(f"first event is {name!r}, not message_start", 0)
    message = first["message"]
    for key in ("id", "model", "usage"):
        if key not in message:
            raise _fail(f"message_start.message has no {key!r}", 0)
    if message.get("type") != "message" or message.get("role") != "assistant":
        raise _fail("message_start.message must be a message from the assistant", 0)
    if message.get("content") != [] or message.get("stop_reason") is not None:
        raise _fail("message_start.message must have content [] and stop_reason null", 0)
    usage = dict(message["usage"])
    if not isinstance(usage.get("input_tokens"), int) or not isinstance(usage.get("output_tokens"), int):
        raise _fail("message_start usage needs integer input_tokens and output_tokens", 0)
    result = CheckedStream(events=events, message={**message, "content": [], "usage": usage}, comments=comments)
    result.names = [n for n, _ in events]

    content: list[dict[str, Any]] = result.message["content"]
    open_index: int | None = None
    json_parts: list[str] = []
    signed = False
    delta_seen = stopped = False
    for i, (name, payload) in enumerate(events[1:], start=1):
        if stopped:
            raise _fail(f"{name!r} after message_stop", i)
        if result.error is not None:
            raise _fail(f"{name!r} after an error event", i)
        if name == "ping":
            continue
        if name == "error":
            if not isinstance(payload.get("error"), dict) or not {"type", "message"} <= set(payload["error"]):
                raise _fail("error event needs error.type and error.message", i)
            result.error = payload["error"]
            continue
        if delta_seen and name != "message_stop":
            raise _fail(f"{name!r} after message_delta", i)
        if name == "content_block_start":
            if open_index is not None:
                raise _fail(f"block {payload['index']} started while block {open_index} is open", i)
            if payload["index"] != len(content):
                raise _fail(f"block index {payload['index']}, expected {len(content)}", i)
            block = dict(payload["content_block"])
            kind = block.get("type")
            if kind not in EMPTY_START:
                raise _fail(f"unknown block type {kind!r}", i)
            for key, empty in EMPTY_START[kind].items():
                if block.get(key) != empty:
                    raise _fail(f"a {kind} block must start with {key}={empty!r}, got {block.get(key)!r}", i)
            if kind == "tool_use" and not (block.get("id", "").startswith("toolu_") and block.get("name")):
                raise _fail("a tool_use block needs a toolu_ id and a name", i)
            content.append(block)
            open_index, json_parts, signed = payload["index"], [], False
        elif name == "content_block_delta":
            if payload["index"] != open_index:
                raise _fail(f"delta for block {payload['index']}, but the open block is {open_index}", i)
            block, delta = content[open_index], payload["delta"]
            if delta["type"] not in DELTA_FOR_BLOCK[block["type"]]:
                raise _fail(f"{delta['type']} inside a {block['type']} block", i)
            if signed:
                raise _fail("delta after the thinking block's signature_delta", i)
            if delta["type"] == "text_delta":
                block["text"] += delta["text"]
            elif delta["type"] == "thinking_delta":
                block["thinking"] += delta["thinking"]
            elif delta["type"] == "signature_delta":
                block["signature"], signed = delta["signature"], True
            else:
                json_parts.append(delta["partial_json"])
        elif name == "content_block_stop":
            if payload["index"] != open_index:
                raise _fail(f"stop for block {payload['index']}, but the open block is {open_index}", i)
            block = content[open_index]
            if block["type"] == "thinking" and not (signed and block["signature"]):
                raise _fail("a thinking block must end with a non-empty signature_delta", i)
            if block["type"] == "tool_use":
                joined = "".join(json_parts)
                block["input"] = json.loads(joined) if joined else {}
                if not isinstance(block["input"], dict):
                    raise _fail("tool input deltas must add up to a JSON object", i)
            open_index = None
        elif name == "message_delta":
            if open_index is not None:
                raise _fail(f"message_delta while block {open_index} is open", i)
            delta, new_usage = payload["delta"], payload["usage"]
            if delta.get("stop_reason") not in STOP_REASONS:
                raise _fail(f"stop_reason {delta.get('stop_reason')!r}", i)
            if (delta["stop_reason"] == "stop_sequence") != isinstance(delta.get("stop_sequence"), str):
                raise _fail("stop_sequence must be a string exactly when stop_reason is stop_sequence", i)
            if new_usage.get("output_tokens", -1) < usage["output_tokens"]:
                raise _fail("message_delta usage.output_tokens must be cumulative (never lower)", i)
            usage.update(new_usage)
            result.message.update(stop_reason=delta["stop_reason"], stop_sequence=delta.get("stop_sequence"))
            delta_seen = True
        elif name == "message_stop":
            if not delta_seen:
                raise _fail("message_stop before message_delta", i)
            stopped = True
        else:
            raise _fail(f"unknown event {name!r}", i)
    if result.error is None and not stopped:
        raise StreamGrammarError("the stream ended without message_stop or an error event")
    return result

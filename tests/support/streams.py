"""Stream well-formedness checkers: parse raw SSE, then assert a protocol's event grammar.

``check_responses_stream`` asserts everything an OpenAI Responses client relies
on (wire-formats §2.3, §5): ``event:`` lines matching ``data.type``, sequence
numbers 0, 1, 2…, ``response.created`` first with ``output: []``, strictly
nested items/parts with consistent ids and indices, deltas that add up to the
``done`` texts, exactly one terminal event, last, whose ``output`` is the items
that were streamed.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from typing import Any


@dataclass
class SseEvent:
    event: str | None
    data: Any


def parse_sse(raw: str) -> list[SseEvent]:
    """SSE text → events (comments skipped); asserts every event has non-empty JSON data."""
    events = []
    for block in raw.replace("\r\n", "\n").split("\n\n"):
        name, data = None, []
        for line in block.split("\n"):
            if not line or line.startswith(":"):
                continue
            field, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if field == "event":
                name = value
            elif field == "data":
                data.append(value)
        if name is None and not data:
            continue  # a keep-alive comment
        assert data, f"event {name!r} has no data"
        text = "\n".join(data)
        assert text != "[DONE]" or name is None, "[DONE] with an event name"
        events.append(SseEvent(name, text if text == "[DONE]" else json.loads(text)))
    return events


TERMINAL = {"response.completed": "completed", "response.incomplete": "incomplete", "response.failed": "failed"}
DELTAS = {"message": ("response.output_text.delta", "response.output_text.done", "output_text"),
          "reasoning": ("response.reasoning_text.delta", "response.reasoning_text.done", "reasoning_text")}


def check_responses_stream(raw: str) -> dict[str, Any]:
    """Assert the Responses event grammar; returns the terminal event's response."""
    events = parse_sse(raw)
    assert events, "empty stream"
    for n, e in enumerate(events):
        assert e.data != "[DONE]", "the Responses API has no [DONE]"
        assert e.event is not None, f"event {n} has no 'event:' line"
        assert e.data.get("type") == e.event, f"event {n}: 'event: {e.event}' but type {e.data.get('type')!r}"
        assert e.data.get("sequence_number") == n, f"event {n} has sequence_number {e.data.get('sequence_number')!r}"

    first = events[0].data
    assert first["type"] == "response.created", f"first event is {first['type']}"
    assert first["response"]["output"] == [] and first["response"]["status"] == "in_progress"
    response_id = first["response"]["id"]

    terminals = [n for n, e in enumerate(events) if e.event in TERMINAL]
    assert len(terminals) == 1, f"{len(terminals)} terminal events"
    assert terminals[0] == len(events) - 1, "events after the terminal event"

    done_items: list[dict[str, Any]] = []
    item: dict[str, Any] | None = None  # the open item, as added
    parts: list[dict[str, Any]] = []  # its finished parts
    part: dict[str, Any] | None = None  # the open part
    text = ""  # the open part's text, or a function call's arguments, from deltas
    text_done = False
    for n, e in enumerate(events[1:-1], 1):
        d, kind = e.data, e.event
        where = f"event {n} ({kind})"
        if kind == "response.in_progress":
            assert item is None and not done_items, f"{where} after output started"
            assert d["response"]["id"] == response_id
        elif kind == "response.output_item.added":
            assert item is None, f"{where}: item {item and item['id']} still open"
            assert d["output_index"] == len(done_items), f"{where}: output_index {d['output_index']}"
            item, parts, part, text, text_done = copy.deepcopy(d["item"]), [], None, "", False
            assert item["id"], f"{where}: item without id"
            assert item["type"] in ("message", "function_call", "custom_tool_call", "reasoning"), f"{where}: type {item['type']}"
            assert item.get("content", []) == [], f"{where}: an item starts with empty content"
            if item["type"] == "message":
                assert item["content"] == [] and item["role"] == "assistant" and item["status"] == "in_progress"
            if item["type"] == "function_call":
                assert item["arguments"] == "" and item["call_id"] and item["name"], f"{where}: {item}"
            if item["type"] == "custom_tool_call":
                assert item["input"] == "" and item["call_id"] and item["name"], f"{where}: {item}"
        elif kind == "response.content_part.added":
            _at(item, d, where, len(done_items), content_index=len(parts))
            assert item["type"] in DELTAS and part is None, f"{where}: not inside a message or reasoning item"
            part, text, text_done = d["part"], "", False
            assert part["type"] == DELTAS[item["type"]][2] and part["text"] == "", f"{where}: {part}"
        elif kind in ("response.output_text.delta", "response.reasoning_text.delta"):
            _at(item, d, where, len(done_items), content_index=len(parts))
            assert part is not None and not text_done and kind == DELTAS[item["type"]][0], f"{where}: no open part"
            assert isinstance(d["delta"], str) and d["delta"], f"{where}: empty delta"
            text += d["delta"]
        elif kind in ("response.output_text.done", "response.reasoning_text.done"):
            _at(item, d, where, len(done_items), content_index=len(parts))
            assert part is not None and not text_done and kind == DELTAS[item["type"]][1], f"{where}: no open part"
            assert d["text"] == text, f"{where}: text {d['text']!r} but deltas gave {text!r}"
            text_done = True
        elif kind == "response.content_part.done":
            _at(item, d, where, len(done_items), content_index=len(parts))
            assert part is not None and text_done, f"{where}: part not finished with a .done event"
            assert d["part"]["type"] == part["type"] and d["part"]["text"] == text, f"{where}: {d['part']}"
            parts.append(d["part"])
            part = None
        elif kind == "response.function_call_arguments.delta":
            _at(item, d, where, len(done_items))
            assert item["type"] == "function_call" and not text_done, f"{where}: not in an open function call"
            text += d["delta"]
        elif kind == "response.function_call_arguments.done":
            _at(item, d, where, len(done_items))
            assert item["type"] == "function_call" and not text_done, f"{where}: not in an open function call"
            assert d["arguments"] == text and d["name"] == item["name"], f"{where}: {d}"
            text_done = True
        elif kind in ("response.custom_tool_call_input.delta", "response.custom_tool_call_input.done"):
            _at(item, d, where, len(done_items))
            assert item["type"] == "custom_tool_call" and not text_done, f"{where}: not in an open custom tool call"
            if kind.endswith(".delta"):
                text += d["delta"]
            else:
                assert d["input"] == text, f"{where}: {d}"
                text_done = True
        elif kind == "response.output_item.done":
            assert item is not None and part is None, f"{where}: no open item, or a part still open"
            assert d["output_index"] == len(done_items), f"{where}: output_index {d['output_index']}"
            final = d["item"]
            assert final["id"] == item["id"] and final["type"] == item["type"], f"{where}: item changed identity"
            assert final["status"] in ("completed", "incomplete"), f"{where}: status {final['status']}"
            if item["type"] in ("function_call", "custom_tool_call"):
                value = final["arguments"] if item["type"] == "function_call" else final["input"]
                assert text_done and value == text and final["call_id"] == item["call_id"]
            else:
                assert final["content"] == parts, f"{where}: content {final['content']} but parts {parts}"
            done_items.append(final)
            item = None
        else:
            raise AssertionError(f"{where}: unexpected event")
    assert item is None, f"item {item['id']} never finished"

    end = events[-1].data
    final = end["response"]
    assert final["id"] == response_id, "the terminal event names another response"
    assert final["status"] == TERMINAL[end["type"]], f"{end['type']} with status {final['status']}"
    assert final["output"] == done_items, "terminal output differs from the streamed items"
    if final["status"] == "incomplete":
        assert final["incomplete_details"]["reason"], "incomplete without a reason"
    if final["status"] == "failed":
        assert final["error"]["message"] and final["error"]["code"], "failed without an error"
    else:
        usage = final["usage"]
        assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
    return final


def _at(item: dict[str, Any] | None, d: dict[str, Any], where: str, output_index: int, **expected: int) -> None:
    assert item is not None, f"{where}: outside any item"
    assert d["item_id"] == item["id"], f"{where}: item_id {d['item_id']} but the open item is {item['id']}"
    assert d["output_index"] == output_index, f"{where}: output_index {d['output_index']}, expected {output_index}"
    for key, value in expected.items():
        assert d[key] == value, f"{where}: {key} {d[key]}, expected {value}"


def check_chat_stream(raw: str) -> dict[str, Any]:
    """Assert the Chat Completions chunk grammar (wire-formats §1.4); returns the message the chunks add up to.

    Same id/object/model on every chunk; ``role`` in the first delta only; per tool call index
    (0, 1, 2… in order) ``id``, ``type`` and ``function.name`` in its first delta only, a ``function``
    object in every delta, arguments that add up to a JSON object; one finish chunk with an empty
    delta; then an optional usage chunk with ``choices: []``; then ``[DONE]``.
    """
    events = parse_sse(raw)
    assert events and events[-1].data == "[DONE]", "the stream does not end with [DONE]"
    chunks = [e.data for e in events[:-1]]
    assert all(e.event is None for e in events), "chat chunks have no event names"
    assert all(isinstance(c, dict) and not c.get("error") for c in chunks), "an error chunk"
    first = chunks[0]
    content = reasoning = ""
    calls: list[dict[str, Any]] = []
    finish: str | None = None
    usage = None
    for n, chunk in enumerate(chunks):
        where = f"chunk {n}"
        assert chunk["object"] == "chat.completion.chunk", where
        assert (chunk["id"], chunk["model"], chunk["created"]) == (first["id"], first["model"], first["created"]), where
        if not chunk["choices"]:
            assert finish is not None and usage is None and chunk["usage"], f"{where}: a usage chunk out of place"
            usage = chunk["usage"]
            continue
        assert finish is None, f"{where}: a chunk after the finish chunk"
        (choice,) = chunk["choices"]
        delta = choice["delta"]
        assert ("role" in delta) == (n == 0), f"{where}: role must be in the first delta only"
        content += delta.get("content") or ""
        reasoning += delta.get("reasoning_content") or ""
        for call in delta.get("tool_calls") or []:
            assert isinstance(call.get("function"), dict), f"{where}: a tool-call delta without 'function'"
            index = call["index"]
            if index == len(calls):
                assert call["id"] and call["type"] == "function" and call["function"]["name"], f"{where}: {call}"
                calls.append({"id": call["id"], "name": call["function"]["name"], "arguments": call["function"].get("arguments", "")})
            else:
                assert index == len(calls) - 1, f"{where}: tool call index {index} out of order"
                assert "id" not in call and "type" not in call and "name" not in call["function"], f"{where}: repeated id/name"
                calls[index]["arguments"] += call["function"]["arguments"]
        if choice["finish_reason"] is not None:
            assert delta == {}, f"{where}: the finish chunk carries a delta"
            finish = choice["finish_reason"]
    assert finish is not None, "no finish chunk"
    for call in calls:
        assert isinstance(json.loads(call["arguments"]), dict), f"arguments of {call['name']} are not a JSON object"
    return {"content": content, "reasoning_content": reasoning, "tool_calls": calls, "finish_reason": finish, "usage": usage}

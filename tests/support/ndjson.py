"""The Ollama stream checker: NDJSON framing and the grammar of chat and generate streams, line by line.

Every line is one JSON object ending in ``\\n``; every object carries ``model``, ``created_at``
(RFC 3339) and ``done``; ``done: false`` objects come first and exactly one ``done: true`` object
ends the stream, with ``done_reason`` and positive, consistent durations in nanoseconds
(``total_duration >= load + prompt_eval + eval``). An ``{"error"}`` line may end a stream instead.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

DURATIONS = ("total_duration", "load_duration", "prompt_eval_duration", "eval_duration")


@dataclass
class OllamaStream:
    lines: list[dict[str, Any]]
    text: str = ""
    thinking: str = ""
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    final: dict[str, Any] | None = None  # the done: true object
    error: str | None = None  # the message of an error line that ended the stream


def check_ndjson(raw: bytes, kind: str = "chat") -> OllamaStream:
    assert raw.endswith(b"\n"), f"the stream does not end with a newline: {raw[-80:]!r}"
    lines = raw.split(b"\n")[:-1]
    assert all(lines), "an empty line in the stream"
    objects = [json.loads(line) for line in lines]
    assert all(isinstance(o, dict) for o in objects), "a line that is not an object"
    out = OllamaStream(objects)
    if "error" in objects[-1]:
        assert set(objects[-1]) == {"error"} and isinstance(objects[-1]["error"], str) and objects[-1]["error"]
        out.error = objects.pop()["error"]
    assert [o["done"] for o in objects].count(True) == (0 if out.error else 1), "not exactly one done: true"
    for n, o in enumerate(objects):
        assert isinstance(o["model"], str) and o["model"], f"line {n} has no model"
        datetime.fromisoformat(o["created_at"].replace("Z", "+00:00"))
        assert o["done"] is (n == len(objects) - 1 and out.error is None), f"line {n}: done out of place"
        if kind == "chat":
            message = o["message"]
            assert message["role"] == "assistant" and isinstance(message["content"], str)
            out.text += message["content"]
            out.thinking += message.get("thinking", "")
            out.tool_calls += message.get("tool_calls", [])
        else:
            assert isinstance(o["response"], str) and "message" not in o
            out.text += o["response"]
            out.thinking += o.get("thinking", "")
    if out.error is None:
        out.final = objects[-1]
        check_final(out.final, streamed=True)
    return out


def check_final(final: dict[str, Any], *, streamed: bool = False) -> None:
    """The last object: done_reason, token counts and durations (nanoseconds) that add up."""
    assert final["done"] is True and final["done_reason"] in ("stop", "length"), final
    if streamed:  # everything was in the lines before
        assert final.get("message", {"content": ""})["content"] == "" and final.get("response", "") == ""
    for key in ("prompt_eval_count", "eval_count", *DURATIONS):
        assert isinstance(final[key], int) and not isinstance(final[key], bool), key
    assert final["prompt_eval_count"] > 0 and final["eval_count"] > 0
    assert final["total_duration"] > 0 and final["load_duration"] > 0 and final["prompt_eval_duration"] > 0
    assert final["eval_duration"] > 0 or final["eval_count"] == 1  # first token to last: nothing between one
    parts = final["load_duration"] + final["prompt_eval_duration"] + final["eval_duration"]
    assert final["total_duration"] >= parts, final

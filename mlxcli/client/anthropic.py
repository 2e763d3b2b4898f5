"""Anthropic Messages, client side: a ChatRequest → a streaming body; events → neutral events.

The mirror image of ``mlxcli.server.providers.anthropic`` (wire-formats §3.2, §3.4). Anthropic
counts cache reads apart from ``input_tokens``: the neutral prompt count is their sum.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from mlxcli.client import bodies
from mlxcli.client.errors import BadResponse, error_event
from mlxcli.client.streams import arguments_object, count, json_payload, obj
from mlxcli.core.events import Event, Finish, FinishReason, ReasoningDelta, TextDelta, ToolCallDelta, Usage
from mlxcli.core.request import ChatRequest, Message
from mlxcli.server.images import to_png

NAME = "anthropic"
TITLE = "Anthropic Messages"
PATH = "/v1/messages"
FRAMING = "sse"
VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 4096  # the API requires max_tokens; `mlxcli serve`'s own default
THINKING_BUDGET = 1024  # the smallest budget Anthropic accepts
EFFORTS = ("low", "medium", "high", "xhigh", "max")  # output_config.effort
UNSUPPORTED = ("min_p", "seed", "repetition_penalty", "presence_penalty", "frequency_penalty", "ignore_eos")
STOP_REASONS: dict[str, FinishReason] = {
    "end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length", "tool_use": "tool_calls",
    "model_context_window_exceeded": "length",
}


def headers(api_key: str | None) -> dict[str, str]:
    # x-api-key only: Anthropic reads an Authorization header as an OAuth token.
    return {"anthropic-version": VERSION, **({"x-api-key": api_key} if api_key else {})}


def unsupported(request: ChatRequest) -> list[str]:
    return bodies.unsupported(request, UNSUPPORTED)


def body(request: ChatRequest, model: str) -> dict[str, Any]:
    bodies.refuse_unsupported(request, UNSUPPORTED, TITLE)
    system, messages = bodies.leading_system(request.messages)
    s = request.sampling
    out: dict[str, Any] = {
        "model": model,
        "max_tokens": s.max_tokens or DEFAULT_MAX_TOKENS,
        "messages": _messages(messages),
        "stream": True,
    }
    if system:
        out["system"] = "\n\n".join(system)
    for name, value in (("temperature", s.temperature), ("top_p", s.top_p), ("top_k", s.top_k)):
        if value is not None:
            out[name] = value
    if s.stop:
        out["stop_sequences"] = list(s.stop)
    if (fmt := request.response_format) is not None:
        out["output_config"] = {"format": {"type": "json_schema", "schema": fmt.schema or {"type": "object"}}}
    if request.tools:
        out["tools"] = [
            {"name": t.name, **({"description": t.description} if t.description else {}), "input_schema": t.parameters}
            for t in request.tools
        ]
        out["tool_choice"] = _tool_choice(request.tool_choice, request.parallel_tool_calls)
    effort = request.reasoning
    if effort == "off":
        out["thinking"] = {"type": "disabled"}
    elif effort is not None:
        out["thinking"] = {"type": "enabled", "budget_tokens": max(1, min(THINKING_BUDGET, out["max_tokens"] - 1))}
        if effort in EFFORTS:  # the level itself; "minimal" is the smallest budget
            out.setdefault("output_config", {})["effort"] = effort
    return out


def _messages(messages: list[Message]) -> list[dict[str, Any]]:
    """Neutral messages → Anthropic turns: tool results are ``tool_result`` blocks of a user turn
    (a user message right after them joins that turn); calls are ``tool_use`` blocks. A system
    message after the first turn stays in place, as Claude Code sends them (mlxcli reads them)."""
    out: list[dict[str, Any]] = []
    for m in messages:
        last = out[-1] if out else None
        joins = last is not None and last["role"] == "user" and isinstance(last["content"], list)
        if m.role == "tool":
            block = {"type": "tool_result", "tool_use_id": m.tool_call_id or "", "content": m.content or ""}
            if joins:
                last["content"].append(block)
            else:
                out.append({"role": "user", "content": [block]})
        elif m.role == "user" and (joins or m.images):
            blocks = [{"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": base64.b64encode(to_png(i)).decode()}}
                      for i in m.images] + ([{"type": "text", "text": m.content}] if m.content else [])  # no empty text blocks
            if joins:
                last["content"].extend(blocks)
            else:
                out.append({"role": "user", "content": blocks})
        elif m.role == "assistant" and m.tool_calls:
            blocks: list[dict[str, Any]] = [{"type": "text", "text": m.content}] if m.content else []
            blocks += [{"type": "tool_use", "id": c.id, "name": c.name, "input": arguments_object(c.arguments)} for c in m.tool_calls]
            out.append({"role": "assistant", "content": blocks})
        else:
            out.append({"role": m.role, "content": m.content or ""})
    return out


def _tool_choice(choice: str | dict[str, Any], parallel: bool) -> dict[str, Any]:
    if isinstance(choice, dict):
        out: dict[str, Any] = {"type": "tool", "name": choice["name"]}
    else:
        out = {"type": {"auto": "auto", "required": "any", "none": "none"}.get(choice, "auto")}
    if not parallel and out["type"] != "none":
        out["disable_parallel_tool_use"] = True
    return out


class Reader:
    """Named events → neutral events; ends at ``message_stop``."""

    def __init__(self) -> None:
        self.done = False
        self.usage_reported = False
        self._usage = Usage()
        self._tools: dict[int, int] = {}  # content block index → tool-call index
        self._reason: FinishReason = "stop"
        self._stop_sequence: str | None = None

    def feed(self, name: str | None, data: str) -> list[Event]:
        payload = obj(json_payload(data))
        kind = name or payload.get("type")
        if kind == "message_start":
            self._read_usage(obj(obj(payload.get("message")).get("usage")))
        elif kind == "content_block_start":
            return self._start(count(payload.get("index")), obj(payload.get("content_block")))
        elif kind == "content_block_delta":
            return self._delta(count(payload.get("index")), obj(payload.get("delta")))
        elif kind == "message_delta":
            delta = obj(payload.get("delta"))
            if delta.get("stop_reason"):
                self._reason = STOP_REASONS.get(delta["stop_reason"], "stop")
            self._stop_sequence = delta.get("stop_sequence") if isinstance(delta.get("stop_sequence"), str) else None
            reported = obj(payload.get("usage"))
            self.usage_reported = self.usage_reported or "output_tokens" in reported
            self._read_usage(reported)
        elif kind == "message_stop":
            self.done = True
            return [Finish(self._reason, self._usage, stop_sequence=self._stop_sequence)]
        elif kind == "error":
            raise error_event(payload)
        return []  # ping, content_block_stop, and event kinds added later

    def _read_usage(self, u: dict[str, Any]) -> None:
        """Fields present replace the ones before (``output_tokens`` is cumulative)."""
        fresh = "input_tokens" in u or "cache_read_input_tokens" in u
        if fresh:
            cached = count(u.get("cache_read_input_tokens"))
            self._usage.prompt_tokens = count(u.get("input_tokens")) + cached + count(u.get("cache_creation_input_tokens"))
            self._usage.cached_tokens = cached
        if "output_tokens" in u:
            self._usage.completion_tokens = count(u.get("output_tokens"))

    def _start(self, index: int, block: dict[str, Any]) -> list[Event]:
        kind = block.get("type")
        if kind == "tool_use":
            tool = self._tools.setdefault(index, len(self._tools))
            given = obj(block.get("input"))
            return [ToolCallDelta(tool, id=block.get("id") or None, name=block.get("name") or "",
                                  arguments=json.dumps(given) if given else "")]
        if kind == "text":
            return _text(TextDelta, block.get("text"))
        if kind == "thinking":
            return _text(ReasoningDelta, block.get("thinking"))
        return []

    def _delta(self, index: int, delta: dict[str, Any]) -> list[Event]:
        kind = delta.get("type")
        if kind == "text_delta":
            return _text(TextDelta, delta.get("text"))
        if kind == "thinking_delta":
            return _text(ReasoningDelta, delta.get("thinking"))
        if kind == "input_json_delta" and index in self._tools and delta.get("partial_json"):
            return [ToolCallDelta(self._tools[index], arguments=delta["partial_json"])]
        return []  # signature_delta and the like

    def end(self) -> list[Event]:
        raise BadResponse("the server ended the stream before the answer was complete")


def _text(kind, text: Any) -> list[Event]:
    return [kind(text)] if isinstance(text, str) and text else []

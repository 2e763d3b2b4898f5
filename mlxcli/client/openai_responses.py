"""OpenAI Responses API, client side: a ChatRequest → a streaming body; events → neutral events.

The mirror image of ``mlxcli.server.providers.openai_responses`` (wire-formats §2.1, §2.3). The
client keeps the conversation, so every request carries it whole (``store: false``, no
``previous_response_id``). Reasoning streams as ``reasoning_text`` (mlxcli, open servers) or as
``reasoning_summary_text`` (OpenAI); both are read.
"""

from __future__ import annotations

from typing import Any

from mlxcli.client import bodies
from mlxcli.client.errors import BadResponse, error_event
from mlxcli.client.openai_chat import openai_effort
from mlxcli.client.streams import count, json_payload, obj
from mlxcli.core.events import Event, Finish, ReasoningDelta, TextDelta, ToolCallDelta, Usage
from mlxcli.core.request import ChatRequest, Message
from mlxcli.server.images import data_url

NAME = "responses"
TITLE = "OpenAI Responses"
PATH = "/v1/responses"
FRAMING = "sse"
# Sampling fields the API has no place for.
UNSUPPORTED = ("top_k", "min_p", "seed", "repetition_penalty", "presence_penalty", "frequency_penalty", "stop", "ignore_eos")
REASONING_DELTAS = ("response.reasoning_text.delta", "response.reasoning_summary_text.delta")


def headers(api_key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


def unsupported(request: ChatRequest) -> list[str]:
    return bodies.unsupported(request, UNSUPPORTED)


def body(request: ChatRequest, model: str) -> dict[str, Any]:
    bodies.refuse_unsupported(request, UNSUPPORTED, TITLE)
    instructions, messages = bodies.leading_system(request.messages)
    out: dict[str, Any] = {"model": model, "input": [item for m in messages for item in _items(m)], "stream": True,
                           "store": False}
    if instructions:
        out["instructions"] = "\n\n".join(instructions)
    s = request.sampling
    for name, value in (("temperature", s.temperature), ("top_p", s.top_p), ("max_output_tokens", s.max_tokens)):
        if value is not None:
            out[name] = value
    if request.tools:
        out["tools"] = [
            {"type": "function", "name": t.name, **({"description": t.description} if t.description else {}),
             "parameters": t.parameters}
            for t in request.tools
        ]
        choice = request.tool_choice
        out["tool_choice"] = {"type": "function", "name": choice["name"]} if isinstance(choice, dict) else choice
        if not request.parallel_tool_calls:
            out["parallel_tool_calls"] = False
    if request.reasoning is not None:
        out["reasoning"] = {"effort": openai_effort(request.reasoning)}
    if (fmt := request.response_format) is not None:
        out["text"] = {"format": {"type": "json_schema", "name": "output", "schema": fmt.schema, "strict": True}
                       if fmt.schema is not None else {"type": "json_object"}}
    return out


def _items(m: Message) -> list[dict[str, Any]]:
    """One neutral message → input items: an assistant turn's calls are items of their own."""
    if m.role == "tool":
        return [{"type": "function_call_output", "call_id": m.tool_call_id or "", "output": m.content or ""}]
    if m.role != "assistant":
        if m.images:
            parts = [{"type": "input_image", "image_url": data_url(i)} for i in m.images] + [{"type": "input_text", "text": m.content or ""}]
            return [{"type": "message", "role": m.role, "content": parts}]
        return [{"type": "message", "role": m.role, "content": m.content or ""}]
    items = [{"type": "message", "role": "assistant", "content": m.content or ""}] if m.content or not m.tool_calls else []
    items += [{"type": "function_call", "call_id": c.id, "name": c.name, "arguments": c.arguments} for c in m.tool_calls]
    return items


class Reader:
    """Typed events (``data.type`` = the event name) → neutral events; ends at the terminal event."""

    def __init__(self) -> None:
        self.done = False
        self.usage_reported = False
        self._calls: dict[Any, int] = {}  # output_index (and item id) → tool-call index
        self._arguments: dict[int, str] = {}  # arguments streamed so far, per call

    def feed(self, name: str | None, data: str) -> list[Event]:
        payload = obj(json_payload(data))
        kind = payload.get("type") or name
        if kind == "response.output_text.delta":
            return _text(TextDelta, payload.get("delta"))
        if kind in REASONING_DELTAS:
            return _text(ReasoningDelta, payload.get("delta"))
        if kind in ("response.output_item.added", "response.output_item.done"):
            item = obj(payload.get("item"))
            if item.get("type") == "function_call":
                return self._call(payload, item, done=kind.endswith(".done"))
        elif kind == "response.function_call_arguments.delta":
            index = self._index(payload)
            if index is not None and payload.get("delta"):
                self._arguments[index] += payload["delta"]
                return [ToolCallDelta(index, arguments=payload["delta"])]
        elif kind in ("response.completed", "response.incomplete"):
            return self._finish(obj(payload.get("response")))
        elif kind == "response.failed":
            raise error_event(obj(payload.get("response")), "the response failed")
        elif kind == "error":
            raise error_event(payload)
        return []

    def _index(self, payload: dict[str, Any]) -> int | None:
        for key in (payload.get("output_index"), payload.get("item_id")):
            if key is not None and key in self._calls:
                return self._calls[key]
        return None

    def _call(self, payload: dict[str, Any], item: dict[str, Any], *, done: bool) -> list[Event]:
        """A call starts with ``output_item.added``; a server that sends the arguments only whole
        (in ``output_item.done``) still has them all delivered."""
        index = self._index({**payload, "item_id": item.get("id")})
        arguments = item.get("arguments") if isinstance(item.get("arguments"), str) else ""
        if index is None:
            index = len(self._arguments)
            for key in (payload.get("output_index"), item.get("id")):
                if key is not None:
                    self._calls[key] = index
            self._arguments[index] = arguments
            return [ToolCallDelta(index, id=item.get("call_id") or item.get("id"), name=item.get("name") or "",
                                  arguments=arguments)]
        seen = self._arguments[index]
        if done and len(arguments) > len(seen) and arguments.startswith(seen):
            self._arguments[index] = arguments
            return [ToolCallDelta(index, arguments=arguments[len(seen):])]
        return []

    def _finish(self, response: dict[str, Any]) -> list[Event]:
        self.done = True
        reported = obj(response.get("usage"))
        self.usage_reported = "output_tokens" in reported
        details = obj(response.get("incomplete_details"))
        if response.get("status") == "incomplete" or details:
            reason = "length" if details.get("reason") in ("max_output_tokens", None) else "stop"
        else:
            reason = "tool_calls" if self._calls else "stop"
        return [Finish(reason, usage(reported))]

    def end(self) -> list[Event]:
        raise BadResponse("the server ended the stream before the answer was complete")


def _text(kind, delta: Any) -> list[Event]:
    return [kind(delta)] if isinstance(delta, str) and delta else []


def usage(u: dict[str, Any]) -> Usage:
    return Usage(
        prompt_tokens=count(u.get("input_tokens")),
        completion_tokens=count(u.get("output_tokens")),
        cached_tokens=count(obj(u.get("input_tokens_details")).get("cached_tokens")),
        reasoning_tokens=count(obj(u.get("output_tokens_details")).get("reasoning_tokens")),
    )

"""The Ollama API, client side: a ChatRequest → an ``/api/chat`` body; NDJSON lines → neutral events.

The mirror image of ``mlxcli.server.providers.ollama``; works against Ollama itself. Sampling goes
in ``options``; a tool call arrives whole (arguments as an object), and the finish reason of an
answer that called tools is ``stop`` on the wire, read back as ``tool_calls``. Ollama reports no
cached or reasoning token counts.
"""

from __future__ import annotations

import json
import math
from typing import Any

from mlxcli.client import bodies
from mlxcli.client.errors import BadResponse, error_event
from mlxcli.client.streams import arguments_object, count, json_payload, obj
from mlxcli.core.errors import InvalidRequest
from mlxcli.core.events import Event, Finish, ReasoningDelta, TextDelta, ToolCallDelta, Usage
from mlxcli.core.request import ChatRequest, Message, new_id

NAME = "ollama"
TITLE = "Ollama"
PATH = "/api/chat"
FRAMING = "ndjson"
# Neutral sampling field → Ollama's option.
OPTIONS = {
    "temperature": "temperature", "top_p": "top_p", "top_k": "top_k", "min_p": "min_p", "seed": "seed",
    "repetition_penalty": "repeat_penalty", "presence_penalty": "presence_penalty",
    "frequency_penalty": "frequency_penalty", "max_tokens": "num_predict",
}
THINK = {"off": False, "minimal": "low", "low": "low", "medium": "medium", "high": "high", "xhigh": "high", "max": "max"}


def headers(api_key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


def unsupported(request: ChatRequest) -> list[str]:
    """Ollama has no end-of-sequence switch and no tool choice beyond sending the tools or not."""
    missing = bodies.unsupported(request, ("ignore_eos",))
    if request.tools and request.tool_choice not in ("auto", "none"):
        missing.append("tool_choice")
    if request.tools and not request.parallel_tool_calls:
        missing.append("parallel_tool_calls")
    return missing


def body(request: ChatRequest, model: str) -> dict[str, Any]:
    missing = unsupported(request)
    if missing:
        raise InvalidRequest(f"the {TITLE} API has no {', '.join(missing)}")
    s = request.sampling
    options = {wire: getattr(s, name) for name, wire in OPTIONS.items() if getattr(s, name) is not None}
    if s.stop:
        options["stop"] = list(s.stop)
    if request.context_window is not None:
        options["num_ctx"] = request.context_window
    out: dict[str, Any] = {"model": model, "messages": [_message(m) for m in request.messages], "stream": True}
    if options:
        out["options"] = options
    if request.tools and request.tool_choice != "none":
        out["tools"] = [
            {"type": "function", "function": {"name": t.name, **({"description": t.description} if t.description else {}),
                                              "parameters": t.parameters}}
            for t in request.tools
        ]
    if request.reasoning is not None:
        out["think"] = THINK[request.reasoning]
    if (fmt := request.response_format) is not None:
        out["format"] = fmt.schema if fmt.schema is not None else "json"
    if request.keep_alive is not None:
        out["keep_alive"] = -1 if math.isinf(request.keep_alive) else request.keep_alive
    return out


def _message(m: Message) -> dict[str, Any]:
    out: dict[str, Any] = {"role": m.role, "content": m.content or ""}
    if m.tool_calls:
        out["tool_calls"] = [
            {"id": c.id, "function": {"index": i, "name": c.name, "arguments": arguments_object(c.arguments)}}
            for i, c in enumerate(m.tool_calls)
        ]
    if m.role == "tool":
        out.update({k: v for k, v in (("tool_call_id", m.tool_call_id), ("tool_name", m.name)) if v})
    return out


class Reader:
    """Lines (chat's ``message`` or generate's ``response``) → events; ends at the line with ``done: true``."""

    def __init__(self) -> None:
        self.done = False
        self.usage_reported = False
        self._calls = 0

    def feed(self, _name: str | None, data: str) -> list[Event]:
        line = obj(json_payload(data))
        if line.get("error"):
            raise error_event(line)
        message = obj(line.get("message"))
        events: list[Event] = []
        thinking = message.get("thinking", line.get("thinking"))
        text = message.get("content", line.get("response"))
        if isinstance(thinking, str) and thinking:
            events.append(ReasoningDelta(thinking))
        if isinstance(text, str) and text:
            events.append(TextDelta(text))
        for call in message.get("tool_calls") or []:
            function = obj(obj(call).get("function"))
            arguments = function.get("arguments")
            events.append(ToolCallDelta(
                self._calls, id=obj(call).get("id") or new_id("call_"), name=function.get("name") or "",
                arguments=arguments if isinstance(arguments, str) else json.dumps(obj(arguments)),
            ))
            self._calls += 1
        if line.get("done"):
            self.done = True
            self.usage_reported = "eval_count" in line
            usage = Usage(prompt_tokens=count(line.get("prompt_eval_count")), completion_tokens=count(line.get("eval_count")))
            reason = "length" if line.get("done_reason") == "length" else "tool_calls" if self._calls else "stop"
            events.append(Finish(reason, usage))
        return events

    def end(self) -> list[Event]:
        raise BadResponse("the server ended the stream before the answer was complete")

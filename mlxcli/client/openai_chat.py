"""OpenAI Chat Completions, client side: a ChatRequest → a streaming body; chunks → neutral events.

The mirror image of ``mlxcli.server.providers.openai_chat`` (wire-formats §1.2, §1.4). Works with
other servers too (llama.cpp, LM Studio, Ollama's /v1, vLLM, OpenAI): reasoning arrives as
``delta.reasoning_content`` (mlxcli, vLLM, llama.cpp) or ``delta.reasoning`` (Ollama, OpenRouter).
"""

from __future__ import annotations

from typing import Any

from mlxcli.client.errors import BadResponse, error_event
from mlxcli.client.streams import count, json_payload, obj
from mlxcli.core.events import Event, Finish, FinishReason, ReasoningDelta, TextDelta, ToolCallDelta, Usage
from mlxcli.core.request import ChatRequest, Message
from mlxcli.server.images import data_url

NAME = "chat"
TITLE = "OpenAI Chat Completions"
PATH = "/v1/chat/completions"
FRAMING = "sse"
FINISH_REASONS: dict[str, FinishReason] = {"stop": "stop", "length": "length", "tool_calls": "tool_calls", "function_call": "tool_calls"}
# Standard fields, then extensions most local servers accept (mlxcli, vLLM, llama.cpp): sent only when set.
SAMPLING_FIELDS = ("temperature", "top_p", "seed", "presence_penalty", "frequency_penalty", "max_tokens",
                   "top_k", "min_p", "repetition_penalty")


def headers(api_key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


def unsupported(request: ChatRequest) -> list[str]:
    """The request fields this API cannot express: none (the extensions go as extra fields)."""
    return []


def body(request: ChatRequest, model: str) -> dict[str, Any]:
    s = request.sampling
    out: dict[str, Any] = {
        "model": model,
        "messages": [_message(m) for m in request.messages],
        "stream": True,
        "stream_options": {"include_usage": True},
        "store": False,  # the client keeps the conversation
    }
    for name in SAMPLING_FIELDS:
        value = getattr(s, name)
        if value is not None:
            out[name] = value
    if s.stop:
        out["stop"] = list(s.stop)
    if s.ignore_eos:
        out["ignore_eos"] = True  # vLLM's extension, for benchmarks
    if request.tools:
        out["tools"] = [
            {"type": "function", "function": {"name": t.name, **({"description": t.description} if t.description else {}),
                                              "parameters": t.parameters}}
            for t in request.tools
        ]
        out["tool_choice"] = _tool_choice(request.tool_choice)
        if not request.parallel_tool_calls:
            out["parallel_tool_calls"] = False
    if request.reasoning is not None:
        out["reasoning_effort"] = openai_effort(request.reasoning)
    if request.template_kwargs:
        out["chat_template_kwargs"] = dict(request.template_kwargs)
    if (fmt := request.response_format) is not None:
        out["response_format"] = (
            {"type": "json_schema", "json_schema": {"name": "output", "schema": fmt.schema, "strict": True}}
            if fmt.schema is not None else {"type": "json_object"}
        )
    return out


def openai_effort(effort: str) -> str:
    """The neutral effort as both OpenAI APIs write it (``off`` is ``none``)."""
    return "none" if effort == "off" else effort


def _message(m: Message) -> dict[str, Any]:
    # Earlier reasoning is not sent back: servers such as DeepSeek's refuse it in the input.
    out: dict[str, Any] = {"role": m.role, "content": (m.content or None) if m.tool_calls else (m.content or "")}
    if m.images:
        out["content"] = [{"type": "image_url", "image_url": {"url": data_url(i)}} for i in m.images] + [{"type": "text", "text": m.content or ""}]
    if m.name:
        out["name"] = m.name
    if m.tool_calls:
        out["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}} for c in m.tool_calls
        ]
    if m.role == "tool":
        out["tool_call_id"] = m.tool_call_id or ""
    return out


def _tool_choice(choice: str | dict[str, Any]) -> str | dict[str, Any]:
    if isinstance(choice, dict):
        return {"type": "function", "function": {"name": choice["name"]}}
    return choice


class Reader:
    """Chunks (``data:`` JSON, ``[DONE]``) → events; the Finish comes last, with the usage chunk's counts."""

    def __init__(self) -> None:
        self.done = False
        self.usage_reported = False
        self._reason: FinishReason | None = None
        self._usage = Usage()

    def feed(self, _name: str | None, data: str) -> list[Event]:
        if data.strip() == "[DONE]":
            self.done = True
            return self.end()
        chunk = json_payload(data)
        if not isinstance(chunk, dict):
            return []
        if chunk.get("error"):
            raise error_event(chunk)
        if isinstance(chunk.get("usage"), dict):
            self._usage = usage(chunk["usage"])
            self.usage_reported = True
        events: list[Event] = []
        for choice in chunk.get("choices") or []:
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue  # one answer per request (n = 1)
            delta = obj(choice.get("delta"))
            reasoning = delta.get("reasoning_content") or delta.get("reasoning")
            if isinstance(reasoning, str) and reasoning:
                events.append(ReasoningDelta(reasoning))
            text = delta.get("content")
            if isinstance(text, str) and text:
                events.append(TextDelta(text))
            for call in delta.get("tool_calls") or []:
                function = obj(obj(call).get("function"))
                events.append(ToolCallDelta(
                    index=count(obj(call).get("index")), id=obj(call).get("id") or None,
                    name=function.get("name") or None, arguments=function.get("arguments") or "",
                ))
            if choice.get("finish_reason"):
                self._reason = FINISH_REASONS.get(choice["finish_reason"], "stop")
        return events

    def end(self) -> list[Event]:
        """At ``[DONE]``, or when the stream ends without it (allowed once the finish chunk came)."""
        if self._reason is None:
            raise BadResponse("the server ended the stream before the answer was complete")
        return [Finish(self._reason, self._usage)]


def usage(u: dict[str, Any]) -> Usage:
    return Usage(
        prompt_tokens=count(u.get("prompt_tokens")),
        completion_tokens=count(u.get("completion_tokens")),
        cached_tokens=count(obj(u.get("prompt_tokens_details")).get("cached_tokens")),
        reasoning_tokens=count(obj(u.get("completion_tokens_details")).get("reasoning_tokens")),
    )

"""Anthropic Messages: the response and its stream (wire-formats §3.3, §3.4)."""

from __future__ import annotations

import hashlib
from typing import Any, Iterable

from mlxcli.core.collect import Completion
from mlxcli.core.errors import MlxcliError
from mlxcli.core.events import Event, Finish, ReasoningDelta, TextDelta, ToolCallDelta, Usage
from mlxcli.core.request import new_id
from mlxcli.server.framing import sse_event
from mlxcli.server.providers import common
from mlxcli.server.providers.anthropic.errors import error_body

def stop_reason(finish: Finish) -> str:
    if finish.reason == "length":
        return "max_tokens"
    if finish.reason == "tool_calls":
        return "tool_use"
    return "stop_sequence" if finish.stop_sequence is not None else "end_turn"


def usage_json(usage: Usage) -> dict[str, Any]:
    """Anthropic counts cache reads apart from ``input_tokens``."""
    return {
        "input_tokens": usage.prompt_tokens - usage.cached_tokens,
        "output_tokens": usage.completion_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": usage.cached_tokens,
    }


def signature(thinking: str) -> str:
    """Clients echo thinking blocks back with their signature; ours only has to be stable and non-empty."""
    return hashlib.sha256(thinking.encode()).hexdigest()


def tool_use_id(engine_id: str | None) -> str:
    """A ``toolu_`` id; the engine's ``call_X`` becomes ``toolu_X``, so streamed, returned and stored ids agree."""
    if engine_id and engine_id.startswith("toolu_"):
        return engine_id
    if engine_id and engine_id.startswith("call_"):
        return "toolu_" + engine_id.removeprefix("call_")
    return new_id("toolu_")


def message_json(completion: Completion, model: str, message_id: str) -> dict[str, Any]:
    finish = completion.finish or Finish("stop")
    content: list[dict[str, Any]] = []
    if completion.reasoning:
        content.append({"type": "thinking", "thinking": completion.reasoning, "signature": signature(completion.reasoning)})
    if completion.text or not completion.tool_calls:
        content.append({"type": "text", "text": completion.text})
    for call in completion.tool_calls:
        content.append({"type": "tool_use", "id": tool_use_id(call.id), "name": call.name, "input": common.arguments_object(call.arguments)})
    return {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason(finish),
        "stop_sequence": finish.stop_sequence,
        "usage": usage_json(finish.usage),
    }


class MessageStreamEncoder:
    """Events per §3.4: message_start, ping, one block per run of text / thinking / one tool call,
    message_delta with the cumulative usage, message_stop."""

    def __init__(self, model: str, prompt_tokens: int, message_id: str):
        self.id = message_id
        self.model = model
        self.prompt_tokens = prompt_tokens
        self.index = -1  # index of the open block, or of the last one closed
        self.open: tuple[str, int | None] | None = None  # ("text" | "thinking" | "tool_use", tool index)
        self.thinking: list[str] = []

    @staticmethod
    def _frame(payload: dict[str, Any]) -> bytes:
        return sse_event(payload["type"], payload)

    def start(self) -> Iterable[bytes]:
        yield self._frame(
            {
                "type": "message_start",
                "message": {
                    "id": self.id,
                    "type": "message",
                    "role": "assistant",
                    "model": self.model,
                    "content": [],
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": usage_json(Usage(prompt_tokens=self.prompt_tokens)),
                },
            }
        )
        yield self._frame({"type": "ping"})

    def event(self, event: Event) -> Iterable[bytes]:
        if isinstance(event, TextDelta):
            if self.open != ("text", None):
                yield from self._start(("text", None), {"type": "text", "text": ""})
            yield self._delta({"type": "text_delta", "text": event.text})
        elif isinstance(event, ReasoningDelta):
            if self.open != ("thinking", None):
                yield from self._start(("thinking", None), {"type": "thinking", "thinking": "", "signature": ""})
            self.thinking.append(event.text)
            yield self._delta({"type": "thinking_delta", "thinking": event.text})
        elif isinstance(event, ToolCallDelta):
            if self.open != ("tool_use", event.index):
                block = {"type": "tool_use", "id": tool_use_id(event.id), "name": event.name or "", "input": {}}
                yield from self._start(("tool_use", event.index), block)
            if event.arguments:
                yield self._delta({"type": "input_json_delta", "partial_json": event.arguments})
        elif isinstance(event, Finish):
            if self.index < 0:  # nothing generated: still one (empty) text block, as non-streaming has
                yield from self._start(("text", None), {"type": "text", "text": ""})
            yield from self._close()
            yield self._frame(
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": stop_reason(event), "stop_sequence": event.stop_sequence},
                    "usage": usage_json(event.usage),
                }
            )
            yield self._frame({"type": "message_stop"})

    def _start(self, key: tuple[str, int | None], block: dict[str, Any]) -> Iterable[bytes]:
        """Close the open block, if any, and start ``block``."""
        yield from self._close()
        self.index += 1
        self.open = key
        yield self._frame({"type": "content_block_start", "index": self.index, "content_block": block})

    def _close(self) -> Iterable[bytes]:
        if self.open is None:
            return
        if self.open[0] == "thinking":
            yield self._delta({"type": "signature_delta", "signature": signature("".join(self.thinking))})
            self.thinking = []
        self.open = None
        yield self._frame({"type": "content_block_stop", "index": self.index})

    def _delta(self, delta: dict[str, Any]) -> bytes:
        return self._frame({"type": "content_block_delta", "index": self.index, "delta": delta})

    def error(self, err: MlxcliError) -> Iterable[bytes]:
        yield self._frame(error_body(err))  # the SDK raises on `event: error`; then we close

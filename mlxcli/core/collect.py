"""Accumulate an event stream into one finished answer (non-streaming responses, CLI)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

from mlxcli.core.events import Event, Finish, ReasoningDelta, TextDelta, ToolCallDelta
from mlxcli.core.request import ToolCall


@dataclass
class Completion:
    text: str = ""
    reasoning: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    finish: Finish | None = None


def collect(events: Iterable[Event]) -> Completion:
    text: list[str] = []
    reasoning: list[str] = []
    calls: dict[int, ToolCall] = {}
    out = Completion()
    for event in events:
        if isinstance(event, TextDelta):
            text.append(event.text)
        elif isinstance(event, ReasoningDelta):
            reasoning.append(event.text)
        elif isinstance(event, ToolCallDelta):
            call = calls.setdefault(event.index, ToolCall(id=event.id or "", name=event.name or "", arguments=""))
            call.id = event.id or call.id
            call.name = event.name or call.name
            call.arguments += event.arguments
        elif isinstance(event, Finish):
            out.finish = event
    out.text = "".join(text)
    out.reasoning = "".join(reasoning)
    out.tool_calls = [calls[i] for i in sorted(calls)]
    return out

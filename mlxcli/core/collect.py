"""Accumulate an event stream into one finished answer (non-streaming responses, storage, CLI)."""

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
    # Every event in arrival order, for encoders whose output is an ordered list of items.
    events: list[Event] = field(default_factory=list)


class Collector:
    """Feed events one by one (e.g. while streaming them); ``completion()`` at any point."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def feed(self, event: Event) -> None:
        self.events.append(event)

    def completion(self) -> Completion:
        text: list[str] = []
        reasoning: list[str] = []
        calls: dict[int, ToolCall] = {}
        out = Completion(events=list(self.events))
        for event in self.events:
            if isinstance(event, TextDelta):
                text.append(event.text)
            elif isinstance(event, ReasoningDelta):
                reasoning.append(event.text)
            elif isinstance(event, ToolCallDelta):
                call = calls.setdefault(event.index, ToolCall(id=event.id or "", name=event.name or "", arguments=""))
                call.custom = call.custom or event.custom
                call.id = event.id or call.id
                call.name = event.name or call.name
                call.arguments += event.arguments
            elif isinstance(event, Finish):
                out.finish = event
        out.text = "".join(text)
        out.reasoning = "".join(reasoning)
        out.tool_calls = [calls[i] for i in sorted(calls)]
        return out


def collect(events: Iterable[Event]) -> Completion:
    collector = Collector()
    for event in events:
        collector.feed(event)
    return collector.completion()

"""The neutral request every front end builds and the engine consumes."""

from __future__ import annotations

import itertools
import os
import time
from dataclasses import dataclass, field
from typing import Any, Literal

Role = Literal["system", "user", "assistant", "tool"]


@dataclass
class ToolCall:
    """A call the assistant made earlier in the conversation (or just now)."""

    id: str
    name: str
    arguments: str  # a JSON object, as text


@dataclass
class Message:
    role: Role
    content: str | None = None
    tool_calls: list[ToolCall] = field(default_factory=list)
    tool_call_id: str | None = None  # on role == "tool": which call this answers
    name: str | None = None
    reasoning: str | None = None  # earlier assistant reasoning, when a client echoes it


@dataclass
class ToolSpec:
    name: str
    description: str | None = None
    parameters: dict[str, Any] = field(default_factory=lambda: {"type": "object", "properties": {}})


@dataclass
class Sampling:
    """Sampling settings; ``None`` means "use the server default"."""

    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    min_p: float | None = None
    seed: int | None = None
    repetition_penalty: float | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    max_tokens: int | None = None
    stop: list[str] = field(default_factory=list)
    ignore_eos: bool = False  # benchmarks: never stop at end-of-sequence, generate max_tokens


@dataclass
class ChatRequest:
    messages: list[Message]
    sampling: Sampling = field(default_factory=Sampling)
    model: str | None = None
    tools: list[ToolSpec] = field(default_factory=list)
    # "auto" | "none" | "required" | {"name": ...}; honoured by the tool-calling layer.
    tool_choice: str | dict[str, Any] = "auto"
    parallel_tool_calls: bool = True  # False: at most one call per answer
    # Extra keyword arguments for the chat template (e.g. enable_thinking).
    template_kwargs: dict[str, Any] = field(default_factory=dict)
    request_id: str = field(default_factory=lambda: new_id("req_"))


_counter = itertools.count()


def new_id(prefix: str, length: int = 24) -> str:
    """A random, provider-prefixed id (``chatcmpl-…``, ``resp_…``, ``call_…``)."""
    return prefix + os.urandom(length // 2 + 1).hex()[:length]


def now() -> int:
    return int(time.time())

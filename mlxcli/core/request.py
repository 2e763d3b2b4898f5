"""The neutral request every front end builds and the engine consumes."""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from typing import Any, Literal

Role = Literal["system", "user", "assistant", "tool"]

# How hard a model should think, from "off" to "max"; each API's own switch maps onto these, and the
# engine onto what the model's chat template understands (an on/off switch, or its own effort levels).
EFFORTS = ("off", "minimal", "low", "medium", "high", "xhigh", "max")
Effort = Literal["off", "minimal", "low", "medium", "high", "xhigh", "max"]


@dataclass
class ToolCall:
    """A call the assistant made earlier in the conversation (or just now)."""

    id: str
    name: str
    arguments: str  # a JSON object, as text; a custom tool's input itself
    custom: bool = False  # a call to a custom tool (OpenAI Responses)


MAX_IMAGES = 16  # images per request, over the whole conversation


@dataclass(frozen=True)
class ImageInput:
    """An image of a message, decoded and resized on the HTTP thread (``server/images.py``).

    ``digest`` (sha256 of the decoded pixels) tells two images apart without comparing them;
    ``image`` is a PIL image in RGB, typed loosely so that core imports no imaging library.
    """

    image: Any = field(compare=False, repr=False)
    digest: str
    width: int
    height: int
    param: str = field(default="messages", compare=False)  # the request field it came from, for errors


@dataclass
class Message:
    role: Role
    content: str | None = None
    tool_calls: list[ToolCall] = field(default_factory=list)
    tool_call_id: str | None = None  # on role == "tool": which call this answers
    name: str | None = None
    reasoning: str | None = None  # earlier assistant reasoning, when a client echoes it
    images: list[ImageInput] = field(default_factory=list)  # shown to the model before ``content``


@dataclass(frozen=True)
class Grammar:
    """A constraint on generated text: JSON (``schema`` None: any JSON object), a Lark grammar or a regex.

    ``param`` is the request field it came from: a grammar the engine cannot compile is a 400 naming it.
    """

    kind: Literal["json", "lark", "regex"]
    param: str
    schema: dict[str, Any] | None = None  # kind "json"
    definition: str = ""  # kind "lark" or "regex"


@dataclass
class ToolSpec:
    name: str
    description: str | None = None
    parameters: dict[str, Any] = field(default_factory=lambda: {"type": "object", "properties": {}})
    # Constrain the call's arguments to ``parameters`` (OpenAI's and Anthropic's ``strict``); the
    # request field of the schema, for errors.
    strict: bool = False
    param: str = field(default="tools", compare=False)
    # A custom tool (OpenAI Responses): its input is free text, or text in this grammar (a function's is JSON).
    custom: bool = False
    grammar: Grammar | None = None


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


# The range every front end accepts for each sampling field: name → (type, lowest, highest). An API
# may narrow a range (Anthropic's temperature stops at 1), never widen it.
SAMPLING_BOUNDS: dict[str, tuple[type, float, float]] = {
    "temperature": (float, 0, 2),
    "top_p": (float, 0, 1),
    "top_k": (int, 0, math.inf),
    "min_p": (float, 0, 1),
    "repetition_penalty": (float, 0.01, 10),
    "presence_penalty": (float, -2, 2),
    "frequency_penalty": (float, -2, 2),
    "max_tokens": (int, 1, math.inf),
}


@dataclass
class ChatRequest:
    messages: list[Message]
    sampling: Sampling = field(default_factory=Sampling)
    model: str | None = None
    tools: list[ToolSpec] = field(default_factory=list)
    # "auto" | "none" | "required" | {"name": ...}; honoured by the tool-calling layer.
    tool_choice: str | dict[str, Any] = "auto"
    parallel_tool_calls: bool = True  # False: at most one call per answer
    response_format: Grammar | None = None  # the answer's text must match it (JSON mode, a JSON Schema)
    reasoning: Effort | None = None  # None: the model's default
    # Extra keyword arguments for the chat template, as a client gave them (they win over ``reasoning``).
    template_kwargs: dict[str, Any] = field(default_factory=dict)
    # How long the model stays in memory once idle after this request, in seconds: None leaves the
    # server's --idle-unload, 0 unloads it as soon as it is idle, math.inf keeps it loaded.
    keep_alive: float | None = None
    # A context window for this request only, at most the model's (None: the model's).
    context_window: int | None = None
    # A raw prompt (legacy Completions): tokenized as it is, no chat template, the answer read as plain
    # text; ``suffix`` asks for the text between the two (fill-in-the-middle). ``messages`` is then empty.
    prompt: str | None = None
    suffix: str | None = None
    logprobs: int | None = None  # each generated token's logprob, with this many alternatives (0–20); None: not asked
    context_overflow: str | None = None  # "error" | "truncate" | "summarize"; None: the model's, else the server's
    speculate: bool = True  # False: this request never speculates, whatever its model does (bench compares both)
    request_id: str = field(default_factory=lambda: new_id("req_"))


def new_id(prefix: str, length: int = 24) -> str:
    """A random, provider-prefixed id (``chatcmpl-…``, ``resp_…``, ``call_…``)."""
    return prefix + os.urandom(length // 2 + 1).hex()[:length]


def now() -> int:
    return int(time.time())

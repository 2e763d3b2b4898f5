"""The neutral event stream the engine produces for each request."""

from __future__ import annotations

from array import array
from dataclasses import dataclass, field
from typing import Literal, Union

FinishReason = Literal["stop", "length", "tool_calls", "cancelled"]


@dataclass
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0  # prompt tokens read from the prompt cache
    cache_write_tokens: int = 0  # prompt tokens computed and left in the prompt cache for later requests
    reasoning_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass
class Timings:
    """Where the time went, for footers, logs and benchmarks (seconds)."""

    queued: float = 0.0  # waiting for the engine
    prefill: float = 0.0  # prompt processing, up to the first token
    decode: float = 0.0  # first token to the last
    peak_memory_gb: float = 0.0
    # Seconds between consecutive output tokens (one fewer than the tokens): the inter-token latency
    # histogram of /metrics. An array of doubles: 8 bytes a token.
    token_gaps: array = field(default_factory=lambda: array("d"))


@dataclass
class TextDelta:
    text: str


@dataclass
class ReasoningDelta:
    text: str


@dataclass
class ToolCallDelta:
    """Part of a tool call: ``name`` and ``id`` arrive once, arguments in pieces."""

    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""  # JSON text; for a custom tool, its raw input
    custom: bool = False  # on the first delta of a call to a custom tool


@dataclass(frozen=True)
class Compaction:
    """What the context overflow policy did to a conversation that outgrew the window, before the model saw it."""

    policy: str  # "truncate" | "summarize"
    dropped: int  # messages after the system messages that the model did not see
    summary: str | None = None  # the note that stood for them, appended to the system message


@dataclass
class TokenLogprob:
    """A generated token's log probability and the likeliest alternatives: sent, before the text the
    token makes, only to a request that asks (``ChatRequest.logprobs``)."""

    token: str
    logprob: float
    top: list[tuple[str, float]] = field(default_factory=list)


@dataclass
class Finish:
    reason: FinishReason
    usage: Usage = field(default_factory=Usage)
    timings: Timings = field(default_factory=Timings)
    stop_sequence: str | None = None  # the stop string that ended the text, if any
    compaction: Compaction | None = None  # the conversation was shortened to fit the window


Event = Union[TextDelta, ReasoningDelta, ToolCallDelta, TokenLogprob, Finish]

"""What a benchmark runs against: the engine in-process, or a server (see clients.py).

Every target answers ``run(request)`` with a RequestResult timed the way a client sees it:
from sending the request to the first and last piece of output, and to the end.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, Protocol

from mlxcli.core.errors import MlxcliError
from mlxcli.core.events import Finish, ReasoningDelta, TextDelta, Timings, ToolCallDelta
from mlxcli.core.request import ChatRequest

if TYPE_CHECKING:
    from mlxcli.core.engine import Engine

TokenSource = Literal["usage", "chunks"]


@dataclass
class RequestResult:
    started: float  # time.perf_counter() when the request was sent
    ended: float = 0.0
    first_output: float | None = None  # first text, reasoning or tool-call piece
    last_output: float | None = None
    chunks: int = 0  # pieces of output received
    usage_output_tokens: int | None = None  # as reported by the server/engine, if it did
    prompt_tokens: int | None = None  # as reported, if it did
    cached_tokens: int | None = None  # prompt tokens the server reports it took from its cache
    text: str = ""  # the answer (multi-turn conversations carry it on)
    error: str | None = None
    timings: Timings | None = None  # the engine's own timings (in-process only)

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def output_tokens(self) -> int:
        """Output tokens: the reported usage when there is one, else one per chunk received."""
        return self.usage_output_tokens if self.usage_output_tokens is not None else self.chunks

    @property
    def token_source(self) -> TokenSource:
        return "usage" if self.usage_output_tokens is not None else "chunks"

    @property
    def ttft(self) -> float | None:
        return None if self.first_output is None else self.first_output - self.started

    @property
    def latency(self) -> float:
        return self.ended - self.started

    @property
    def decode_tps(self) -> float | None:
        """Tokens after the first, over the time from the first piece of output to the last."""
        if self.first_output is None or self.last_output is None or self.output_tokens < 2:
            return None
        span = self.last_output - self.first_output
        return (self.output_tokens - 1) / span if span > 0 else None

    def output(self, text: str, now: float | None = None) -> None:
        """Record one piece of output arriving."""
        now = time.perf_counter() if now is None else now
        if self.first_output is None:
            self.first_output = now
        self.last_output = now
        self.chunks += 1
        self.text += text


class Target(Protocol):
    name: str
    kind: str  # "engine" | "http"

    def run(self, request: ChatRequest) -> RequestResult: ...

    def describe(self) -> dict: ...

    def close(self) -> None: ...


@dataclass
class EngineTarget:
    """The engine called directly, on the caller's thread (several callers queue up, as on a server)."""

    engine: "Engine"
    name: str = "engine"
    kind: str = field(default="engine", init=False)

    def run(self, request: ChatRequest) -> RequestResult:
        result = RequestResult(started=time.perf_counter())
        try:
            for event in self.engine.submit(request):
                if isinstance(event, (TextDelta, ReasoningDelta)):
                    result.output(event.text)
                elif isinstance(event, ToolCallDelta):
                    result.output(event.arguments)
                elif isinstance(event, Finish):
                    result.usage_output_tokens = event.usage.completion_tokens
                    result.prompt_tokens = event.usage.prompt_tokens
                    result.cached_tokens = event.usage.cached_tokens
                    result.timings = event.timings
                    if event.reason == "cancelled":
                        result.error = "cancelled"
        except MlxcliError as exc:
            result.error = exc.message
        result.ended = time.perf_counter()
        return result

    def describe(self) -> dict:
        from mlxcli.engine import platform

        default = next(m for m in self.engine.models() if m.name == self.engine.default_model)
        return {
            "name": self.name,
            "kind": self.kind,
            "model": default.name,
            "dtype": default.dtype,
            "fast_path": platform.current().fast_path,
        }

    def close(self) -> None:
        pass

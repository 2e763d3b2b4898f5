"""What a benchmark runs against: the engine in-process, or a server over HTTP (``mlxcli.client``).

Every target answers ``run(request)`` with a RequestResult timed the way a client sees it:
from sending the request to the first and last piece of output, and to the end. Both read
the same neutral events; only a server may leave its token counts out.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Literal, Protocol

from mlxcli.bench import procstat
from mlxcli.core.errors import MlxcliError
from mlxcli.core.events import Event, Finish, ReasoningDelta, TextDelta, Timings, ToolCallDelta
from mlxcli.core.request import ChatRequest, Grammar

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
    arrivals: list[float] = field(default_factory=list)  # when each piece of output came (perf_counter)
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
    def gaps(self) -> list[float]:
        """The times between consecutive pieces of output: what a reader waits between tokens."""
        return [b - a for a, b in zip(self.arrivals, self.arrivals[1:])]

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
        self.arrivals.append(now)
        self.chunks += 1
        self.text += text

    def feed(self, event: Event, *, usage_reported: bool = True) -> None:
        """Record one neutral event (a Finish's usage only if the target reported it)."""
        if isinstance(event, (TextDelta, ReasoningDelta)):
            self.output(event.text)
        elif isinstance(event, ToolCallDelta):
            if event.arguments:
                self.output(event.arguments)
        elif isinstance(event, Finish):
            if usage_reported:
                self.usage_output_tokens = event.usage.completion_tokens
                self.prompt_tokens = event.usage.prompt_tokens
                self.cached_tokens = event.usage.cached_tokens
            if event.reason == "cancelled":
                self.error = "cancelled"


@dataclass
class Watch:
    """A request left running (a stream in the background): ``started`` is set once its first output
    came (or it ended); set ``stop`` to stop reading it, which cancels it."""

    started: threading.Event = field(default_factory=threading.Event)
    stop: threading.Event = field(default_factory=threading.Event)

    def seen(self, result: RequestResult) -> bool:
        """After each event: note the first output; whether to stop."""
        if result.first_output is not None:
            self.started.set()
        return self.stop.is_set()


class Target(Protocol):
    name: str
    kind: str  # "engine" | "http"

    def run(self, request: ChatRequest, watch: Watch | None = None) -> RequestResult: ...

    def cpu_seconds(self) -> float | None:
        """CPU seconds the server has used so far (a local server, read from /proc); None if unknown."""
        ...

    def describe(self) -> dict: ...

    def close(self) -> None: ...


@dataclass
class EngineTarget:
    """The engine called directly, on the caller's thread (several callers queue up, as on a server)."""

    engine: "Engine"
    name: str = "engine"
    kind: str = field(default="engine", init=False)

    def run(self, request: ChatRequest, watch: Watch | None = None) -> RequestResult:
        result = RequestResult(started=time.perf_counter())
        try:
            generation = self.engine.submit(request)
            for event in generation:
                result.feed(event)
                if isinstance(event, Finish):
                    result.timings = event.timings
                elif watch is not None and watch.seen(result):
                    generation.cancel()
                    break
        except MlxcliError as exc:
            result.error = exc.message
        finally:
            if watch is not None:
                watch.started.set()
        result.ended = time.perf_counter()
        return result

    def cpu_seconds(self) -> float | None:
        return None  # the engine shares this process with the benchmark's clients

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


class HttpTarget:
    """A server speaking ``api``; ``run`` may be called from several threads at once (one connection each)."""

    kind = "http"

    def __init__(
        self,
        url: str,
        *,
        api: str = "chat",
        model: str | None = None,
        api_key: str | None = None,
        timeout: float = 600.0,
        connections: int = 16,
        name: str | None = None,
    ):
        from mlxcli.client import Client

        self.api = api
        self.client = Client(url, api=api, api_key=api_key, timeout=timeout, connections=connections)
        self.root = self.client.root
        self.name = name or self.root.split("://", 1)[1]
        try:
            self.model = model or self._served_model()
        except MlxcliError:
            self.client.close()
            raise
        self.pid = procstat.server_pid(self.root)  # a server on this machine: its CPU time is measured

    def _served_model(self) -> str:
        """The first model the server lists (most serve exactly one), else mlx_lm.server's name for
        the model it was started with. Raises ServerUnreachable if nothing listens there."""
        from mlxcli.client import ServerError, ServerUnreachable

        try:
            return self.client.models()[0]
        except ServerUnreachable:
            raise
        except (ServerError, IndexError):
            return "default_model"  # e.g. mlx_lm.server drops the connection when it has no HF cache

    def run(self, request: ChatRequest, watch: Watch | None = None) -> RequestResult:
        result = RequestResult(started=time.perf_counter())
        try:
            with self.client.stream(request, model=self.model) as events:
                for event in events:
                    result.feed(event, usage_reported=events.usage_reported)
                    if watch is not None and watch.seen(result):
                        break  # leaving the stream closes it: the server cancels the request
        except MlxcliError as exc:
            result.error = exc.message
        finally:
            if watch is not None:
                watch.started.set()
        result.ended = time.perf_counter()
        return result

    def cpu_seconds(self) -> float | None:
        return procstat.cpu_seconds(self.pid) if self.pid is not None else None

    def describe(self) -> dict:
        return {"name": self.name, "kind": self.kind, "url": self.root, "api": self.api, "model": self.model, "pid": self.pid}

    def close(self) -> None:
        self.client.close()


class ConstrainedTarget:
    """Another target's requests with a response format (``bench --json-schema``), to run beside the
    same requests without it: what structured output costs."""

    def __init__(self, inner: Target, response_format: Grammar):
        self.inner = inner
        self.response_format = response_format
        self.name = f"{inner.name} +json-schema"
        self.kind = inner.kind

    def run(self, request: ChatRequest, watch: Watch | None = None) -> RequestResult:
        return self.inner.run(replace(request, response_format=self.response_format), watch)

    def cpu_seconds(self) -> float | None:
        return self.inner.cpu_seconds()

    def describe(self) -> dict:
        return {**self.inner.describe(), "name": self.name, "json_schema": self.response_format.schema}

    def close(self) -> None:
        pass  # the inner target is closed on its own

"""A request inside the engine (``Job``: what runs, and its events) and the caller's handle on it
(``Generation``, which implements ``mlxcli.core.engine.Generation``)."""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Iterator

from mlxcli.core.errors import EngineFailure, MlxcliError
from mlxcli.core.events import Compaction, Event, Finish
from mlxcli.core.request import ChatRequest, Sampling
from mlxcli.engine import constraints
from mlxcli.engine.prompt import RenderedPrompt
from mlxcli.engine.registry import ServedModel

if TYPE_CHECKING:
    from mlxcli.engine.engine import MlxEngine


@dataclass
class Job:
    request: ChatRequest
    model: ServedModel
    sampling: Sampling  # resolved: the request's, else the model's, else the server's defaults
    prompt: RenderedPrompt
    max_tokens: int
    constraint: constraints.Constraint | None = None  # structured output: masks its logits
    compaction: Compaction | None = None  # what the overflow policy did to its conversation
    submitted: float = field(default_factory=time.perf_counter)
    events: queue.SimpleQueue = field(default_factory=queue.SimpleQueue)
    cancelled: threading.Event = field(default_factory=threading.Event)
    generated_tokens: int = 0  # read by tests and /health while it runs
    load_only: bool = False  # a load job (``MlxEngine.load``): nothing to generate
    cached_tokens: int = 0  # of the prompt, taken from the prompt cache (set when it starts)
    number: int = 0  # how the ranks of a distributed engine name it (distributed.py)

    def emit(self, item: Event | MlxcliError) -> None:
        self.events.put(item)


class Generation:
    """The caller's handle on one job: iterate for events; ``cancel()`` to stop it."""

    def __init__(self, engine: "MlxEngine", job: Job):
        self._engine = engine
        self.job = job
        self.prompt_tokens = len(job.prompt.tokens)
        self.compaction = job.compaction  # known before the answer starts: for a response header
        self._done = False

    @property
    def generated_tokens(self) -> int:
        return self.job.generated_tokens

    @property
    def cached_tokens(self) -> int:
        return self.job.cached_tokens

    def next_event(self, timeout: float | None = None) -> Event | None:
        """The next event, or None if none arrived within ``timeout`` (for keep-alives)."""
        if self._done:
            raise StopIteration
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            wait = 0.5 if deadline is None else max(0.0, min(0.5, deadline - time.monotonic()))
            try:
                item = self.job.events.get(timeout=wait)
            except queue.Empty:
                if not self._engine.alive:
                    self._done = True
                    raise EngineFailure("the engine stopped while this request was running") from None
                if deadline is not None and time.monotonic() >= deadline:
                    return None
                continue
            if isinstance(item, MlxcliError):
                self._done = True
                raise item
            if isinstance(item, Finish):
                self._done = True
            return item

    def __iter__(self) -> Iterator[Event]:
        return self

    def __next__(self) -> Event:
        event = self.next_event()
        assert event is not None
        return event

    def cancel(self) -> None:
        if not self._done:
            self._done = True
            self._engine.cancel(self.job)

    close = cancel

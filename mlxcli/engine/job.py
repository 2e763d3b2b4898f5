"""A request inside the engine and the caller's handle on it.

``Job`` (a chat request: what runs, and its events) and ``Generation`` (``mlxcli.core.engine.Generation``);
``WorkJob`` (a request of a kind that answers once: embeddings, ...) and ``WorkHandle``. Bottom-layer
data: a handle is given the engine's ``alive`` and ``cancel``, it does not know the engine.
"""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

from mlxcli.core.errors import EngineFailure, MlxcliError
from mlxcli.core.events import Compaction, Event, Finish
from mlxcli.core.request import ChatRequest, Sampling
from mlxcli.engine import constraints
from mlxcli.engine.prompt import RenderedPrompt
from mlxcli.engine.served import ServedModel


@dataclass(eq=False)  # a job is itself: compared and hashed by identity
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

    def __init__(self, job: Job, alive: Callable[[], bool], cancel: Callable[[Job], None]):
        self.job = job
        self.model = job.model.name  # the served model that answers, whatever name the request gave
        self._alive = alive
        self._cancel = cancel
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
                if not self._alive():
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
            self._cancel(self.job)

    close = cancel


@dataclass(eq=False)
class WorkJob:
    """A request of a kind that answers once (embeddings, ...): worked on a step at a time by its kind's
    ``Worker`` (worker.py), then ``emit``s its outcome."""

    request: Any  # the kind's neutral request (it has ``request_id`` and ``keep_alive``)
    model: ServedModel
    cancelled: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)
    output: Any = None  # the answer, or the MlxcliError it failed with
    acquired: bool = False  # holds its model in memory (registry.acquire) until it ends
    partials: queue.SimpleQueue = field(default_factory=queue.SimpleQueue)  # what it reports before its answer

    def emit(self, outcome: Any) -> None:
        self.output = outcome
        self.done.set()

    def report(self, item: Any) -> None:
        """Something the caller may show before the answer (an image in progress)."""
        self.partials.put(item)

    def close(self) -> None:
        """Free what the job holds once it ends, answered, failed or cancelled (engine thread)."""


class WorkHandle:
    """The caller's side of a ``WorkJob``: ``result()`` waits for its answer; ``cancel()`` drops it."""

    def __init__(self, job: WorkJob, alive: Callable[[], bool], cancel: Callable[[WorkJob], None]):
        self.job = job
        self.model = job.model.name
        self._alive = alive
        self._cancel = cancel

    def result(self, timeout: float | None = None) -> Any:
        """The answer, or None if it is not ready within ``timeout`` seconds; raises the request's error."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.job.done.wait(0.5 if deadline is None else max(0.0, min(0.5, deadline - time.monotonic()))):
            if not self._alive():
                raise EngineFailure("the engine stopped while this request was running")
            if deadline is not None and time.monotonic() >= deadline:
                return None
        if isinstance(self.job.output, MlxcliError):
            raise self.job.output
        return self.job.output

    def partial(self) -> Any | None:
        """The next thing the job reported before its answer (``WorkJob.report``), if any; never waits."""
        try:
            return self.job.partials.get_nowait()
        except queue.Empty:
            return None

    def cancel(self) -> None:
        if not self.job.done.is_set():
            self._cancel(self.job)

"""Embedding requests on the engine thread, one batch at a time between decode steps.

A request's inputs are sorted by length and cut into batches (``plan``) when it is submitted, so
the padding in a batch is only the gap between neighbours in length. The engine calls ``step``
once per pass of its loop, beside one decode step of the running chat batch: an embedding request
never waits behind a long generation, and a generation is slowed by one embedding batch per token
at most. Requests in progress take turns batch by batch, so a small one is not stuck behind a
request of 2048 inputs.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable

from mlxcli.core.embeddings import EmbeddingRequest, Embeddings
from mlxcli.core.errors import EngineFailure, InvalidRequest, MlxcliError
from mlxcli.engine.embeddings.model import EmbeddingConfig, normalize

if TYPE_CHECKING:
    from mlxcli.engine.registry import ModelRegistry, ServedModel

log = logging.getLogger("mlxcli.engine")

MAX_BATCH = 32  # inputs embedded together at most
MAX_BATCH_TOKENS = 8192  # padded tokens per batch: bounds the memory and the time of one step


def plan(lengths: list[int], max_batch: int = MAX_BATCH, max_tokens: int = MAX_BATCH_TOKENS) -> list[list[int]]:
    """Input indices in batches of similar length: sorted, at most ``max_batch`` inputs and
    ``max_tokens`` padded tokens each (an input longer than that is a batch of its own)."""
    batches: list[list[int]] = []
    current: list[int] = []
    for i in sorted(range(len(lengths)), key=lengths.__getitem__):
        if current and (len(current) >= max_batch or (len(current) + 1) * lengths[i] > max_tokens):
            batches.append(current)
            current = []
        current.append(i)
    return batches + [current] if current else batches


def check_inputs(request: EmbeddingRequest, tokens: list[list[int]], setup: EmbeddingConfig, window: int) -> None:
    """Refuse, naming the input, what the model cannot embed as it is (nothing is truncated)."""
    for i, ids in enumerate(tokens):
        param = f"input[{i}]" if request.listed else "input"
        if not ids:
            raise InvalidRequest(f"'{param}' has no tokens.", param=param)
        if len(ids) > window:
            raise InvalidRequest(
                f"'{param}' is {len(ids)} tokens long; this model's maximum input length is {window} tokens.",
                param=param,
                code="context_length_exceeded",
            )
        outside = next((t for t in ids if not 0 <= t < setup.vocab_size), None)
        if outside is not None:
            raise InvalidRequest(f"'{param}' holds the token id {outside}, outside the vocabulary (0 to {setup.vocab_size - 1}).", param=param)
    if request.dimensions is not None and request.dimensions > setup.width:
        raise InvalidRequest(
            f"'dimensions' is {request.dimensions}; this model's embeddings have {setup.width} dimensions.", param="dimensions"
        )


@dataclass(eq=False)
class EmbedJob:
    request: EmbeddingRequest
    model: "ServedModel"
    tokens: list[list[int]]
    batches: deque[list[int]]
    cancelled: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)
    vectors: list[list[float] | None] = field(default_factory=list)
    output: Embeddings | MlxcliError | None = None
    acquired: bool = False  # holds its model in memory (registry.acquire) until it ends

    def __post_init__(self) -> None:
        self.vectors = [None] * len(self.tokens)

    def emit(self, outcome: Embeddings | MlxcliError) -> None:
        self.output = outcome
        self.done.set()


class EmbeddingHandle:
    """The caller's side of an ``EmbedJob`` (``mlxcli.core.embeddings.EmbeddingJob``)."""

    def __init__(self, job: EmbedJob, alive: Callable[[], bool], cancel: Callable[[EmbedJob], None]):
        self.job = job
        self.prompt_tokens = sum(len(t) for t in job.tokens)
        self._alive = alive
        self._cancel = cancel

    def result(self, timeout: float | None = None) -> Embeddings | None:
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.job.done.wait(0.5 if deadline is None else max(0.0, min(0.5, deadline - time.monotonic()))):
            if not self._alive():
                raise EngineFailure("the engine stopped while this request was running")
            if deadline is not None and time.monotonic() >= deadline:
                return None
        if isinstance(self.job.output, MlxcliError):
            raise self.job.output
        return self.job.output

    def cancel(self) -> None:
        if not self.job.done.is_set():
            self._cancel(self.job)


class Embedder:
    """The embedding requests in progress, the one whose turn it is first (engine thread only, but
    ``jobs`` is read anywhere: a request stays listed until it ends)."""

    def __init__(self, registry: "ModelRegistry"):
        self._registry = registry
        self._jobs: deque[EmbedJob] = deque()

    @property
    def jobs(self) -> list[EmbedJob]:
        return list(self._jobs)

    def __len__(self) -> int:
        return len(self._jobs)

    def add(self, job: EmbedJob) -> None:
        self._jobs.append(job)

    def step(self) -> None:
        """Embed the next batch of the request whose turn it is."""
        job = self._jobs[0]
        if job.cancelled.is_set():
            return self._end(job, None)
        try:
            if not job.acquired:
                self._registry.acquire(job.model)
                job.acquired = True
            self._embed(job, job.batches.popleft())
        except Exception as exc:  # one request's failure must not stop the engine
            log.exception("embedding failed for %s", job.request.request_id)
            return self._end(job, EngineFailure(f"embedding failed: {type(exc).__name__}: {exc}"))
        if job.batches:
            self._jobs.rotate(-1)  # the next request's turn
        else:
            self._end(job, Embeddings(vectors=job.vectors, prompt_tokens=sum(len(t) for t in job.tokens)))  # type: ignore[arg-type]

    def _embed(self, job: EmbedJob, batch: list[int]) -> None:
        loaded = job.model.loaded
        assert loaded is not None
        model = loaded.model
        vectors = model.embed([job.tokens[i] for i in batch])
        if job.request.dimensions is not None:
            vectors = vectors[:, : job.request.dimensions]
            vectors = normalize(vectors) if model.setup.normalize else vectors
        for i, vector in zip(batch, vectors.tolist()):
            job.vectors[i] = vector

    def _end(self, job: EmbedJob, outcome: Embeddings | MlxcliError | None) -> None:
        self._jobs.remove(job)
        if job.acquired:
            self._registry.release(job.model)
            job.acquired = False
        if outcome is not None:
            job.emit(outcome)

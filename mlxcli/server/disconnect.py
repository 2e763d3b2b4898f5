"""Reading a generation on an HTTP worker thread while watching the client.

waitress (run with ``channel_request_lookahead``) keeps reading a connection
while its request is served, so it notices a client that hung up even when
nothing is being written, and exposes that as
``environ["waitress.client_disconnected"]``. Checking it lets a request cancel
its generation during a long prefill or a non-streaming answer; a streaming
answer also learns of it from its next write.

The middleware puts the current request's check in ``current`` (a context
variable of the worker thread), so every route that reads a generation through
``watch`` or a streamed body (stream.py) gets it without passing the request around.
"""

from __future__ import annotations

import contextvars
import time
from typing import Any, Callable, Iterator

import falcon

from mlxcli.core.embeddings import EmbeddingJob, Embeddings
from mlxcli.core.transcription import Transcription, TranscriptionJob
from mlxcli.core.errors import ClientClosedRequest
from mlxcli.core.events import Event, Finish
from mlxcli.core.engine import Generation, Work

Disconnected = Callable[[], bool]
POLL_SECONDS = 0.25  # how often a waiting request checks that its client is still there


def never() -> bool:
    return False


current: contextvars.ContextVar[Disconnected] = contextvars.ContextVar("client_disconnected", default=never)


def client_disconnected(req: falcon.Request) -> Disconnected:
    """A callable saying whether the client of ``req`` has gone (always False outside waitress)."""
    return req.env.get("waitress.client_disconnected") or never


def watch(
    generation: Generation, disconnected: Disconnected | None = None, *, idle: float | None = None
) -> Iterator[Event | None]:
    """The generation's events up to its ``Finish``, and ``None`` after each ``idle``
    seconds without one (a keep-alive tick). Once the client is gone: cancel the
    generation and raise ``ClientClosedRequest``. ``disconnected`` defaults to the
    current request's check, read now (not at the first iteration)."""
    return _watch(generation, disconnected or current.get(), idle)


def _watch(generation: Generation, disconnected: Disconnected, idle: float | None) -> Iterator[Event | None]:
    quiet_since = time.monotonic()
    while True:
        if disconnected():
            generation.cancel()
            raise ClientClosedRequest("The client closed the connection.")
        event = generation.next_event(timeout=POLL_SECONDS)
        if event is not None:
            yield event
            if isinstance(event, Finish):
                return
            quiet_since = time.monotonic()
        elif idle is not None and time.monotonic() - quiet_since >= idle:
            quiet_since = time.monotonic()
            yield None


def events(generation: Generation, disconnected: Disconnected | None = None) -> Iterator[Event]:
    """The generation's events (for a non-streaming answer), cancelled if the client leaves."""
    for event in watch(generation, disconnected):
        if event is not None:
            yield event


def embeddings(job: EmbeddingJob) -> Embeddings:
    """The vectors of an embeddings job, cancelled if the client leaves (or anything else goes wrong)."""
    return result(job)


def transcription(job: TranscriptionJob) -> Transcription:
    """The text of a transcription job, cancelled if the client leaves (or anything else goes wrong)."""
    return result(job)


def result(job: Work) -> Any:
    """The answer of a job of a kind that answers once, cancelled if the client leaves (or anything else goes wrong)."""
    watching = current.get()
    try:
        while (result := job.result(timeout=POLL_SECONDS)) is None:
            if watching():
                raise ClientClosedRequest("The client closed the connection.")
    finally:
        job.cancel()
    return result

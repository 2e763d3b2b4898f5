"""Server-sent events: framing, keep-alives, and cancel-on-disconnect.

Waitress closes a response iterator at its next write after the client left, so
the ``finally`` below cancels the generation; keep-alive comments during a long
prefill make that write happen even before the first token.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Iterable, Iterator, Protocol

import orjson

from mlxcli.core.collect import Collector, Completion
from mlxcli.core.errors import MlxcliError
from mlxcli.core.events import Event, Finish
from mlxcli.engine.engine import Generation

log = logging.getLogger("mlxcli.server")

KEEPALIVE = b": keep-alive\n\n"


def data_frame(payload: Any) -> bytes:
    return b"data: " + orjson.dumps(payload) + b"\n\n"


def event_frame(name: str, payload: Any) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"


class StreamEncoder(Protocol):
    """A provider's stateful encoder of one response stream."""

    def start(self) -> Iterable[bytes]: ...

    def event(self, event: Event) -> Iterable[bytes]: ...

    def error(self, err: MlxcliError) -> Iterable[bytes]: ...


def stream(
    generation: Generation,
    encoder: StreamEncoder,
    *,
    keepalive_seconds: float = 10.0,
    on_finish: Callable[[Finish | None], None] | None = None,
    on_complete: Callable[[Completion], None] | None = None,
) -> Iterator[bytes]:
    """The response body of a streaming request; always ends cleanly or with an error event.

    ``on_complete`` gets the finished answer before the encoder writes its final
    event (e.g. to store it): if it raises, the client gets an error event instead.
    """
    finish: Finish | None = None
    collector = Collector()
    try:
        yield from encoder.start()
        while finish is None:
            event = generation.next_event(timeout=keepalive_seconds)
            if event is None:
                yield KEEPALIVE
                continue
            collector.feed(event)
            if isinstance(event, Finish):
                if on_complete is not None:
                    on_complete(collector.completion())
                finish = event
            yield from encoder.event(event)
    except MlxcliError as err:
        yield from encoder.error(err)
    except Exception as exc:  # never a traceback on the wire
        log.exception("stream failed")
        yield from encoder.error(MlxcliError(f"stream failed: {type(exc).__name__}"))
    finally:
        generation.cancel()
        if on_finish is not None:
            on_finish(finish)

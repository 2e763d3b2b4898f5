"""The body of a streamed answer: the provider's encoder over the neutral events, keep-alives,
and cancel-on-disconnect.

A client that leaves cancels its generation: waitress closes the response body
at the next write after the client left (``EventStream.close`` cancels), and
while nothing is written (a long prefill) the stream polls waitress's
disconnect flag (see ``disconnect.py``). The provider's keep-alive (framing.py)
keeps proxies from timing out an idle stream.
"""

from __future__ import annotations

import logging
from typing import Callable, Iterable, Iterator, Protocol

from mlxcli.core.collect import Collector, Completion
from mlxcli.core.engine import Generation
from mlxcli.core.errors import ClientClosedRequest, MlxcliError
from mlxcli.core.events import Event, Finish
from mlxcli.server.disconnect import Disconnected, watch

log = logging.getLogger("mlxcli.server")


class StreamEncoder(Protocol):
    """A provider's stateful encoder of one response stream."""

    def start(self) -> Iterable[bytes]: ...

    def event(self, event: Event) -> Iterable[bytes]: ...

    def error(self, err: MlxcliError) -> Iterable[bytes]: ...


class EventStream:
    """The body of a streaming response; it always ends cleanly or with an error event.

    An object rather than a generator so that ``close()`` cancels the generation
    even when the server closes the body before ever iterating it. ``on_complete``
    gets the finished answer before the encoder writes its final event (e.g. to
    store it): if it raises, the client gets an error event instead.
    """

    def __init__(
        self,
        generation: Generation,
        encoder: StreamEncoder,
        *,
        keepalive: bytes | None = None,
        keepalive_seconds: float = 10.0,
        disconnected: Disconnected | None = None,
        on_finish: Callable[[Finish | None], None] | None = None,
        on_complete: Callable[[Completion], None] | None = None,
    ):
        self.generation = generation
        self._keepalive = keepalive
        self._on_complete = on_complete
        self.finish: Finish | None = None
        self._on_finish = on_finish
        self._closed = False
        self._frames = self._encode(encoder, watch(generation, disconnected, idle=keepalive_seconds))

    def _encode(self, encoder: StreamEncoder, events: Iterator[Event | None]) -> Iterator[bytes]:
        collector = Collector()
        try:
            yield from encoder.start()
            for event in events:
                if event is None:
                    if self._keepalive:
                        yield self._keepalive
                    continue
                collector.feed(event)
                if isinstance(event, Finish):
                    if self._on_complete is not None:
                        self._on_complete(collector.completion())
                    self.finish = event
                yield from encoder.event(event)
        except ClientClosedRequest:
            return  # nobody is listening
        except MlxcliError as err:
            yield from encoder.error(err)
        except Exception as exc:  # never a traceback on the wire
            log.exception("stream failed")
            yield from encoder.error(MlxcliError(f"stream failed: {type(exc).__name__}"))

    def __iter__(self) -> "EventStream":
        return self

    def __next__(self) -> bytes:
        return next(self._frames)

    def close(self) -> None:
        """Called by the WSGI server when the body ends or the client left: stop generating."""
        if self._closed:
            return
        self._closed = True
        self._frames.close()
        self.generation.cancel()
        if self._on_finish is not None:
            self._on_finish(self.finish)


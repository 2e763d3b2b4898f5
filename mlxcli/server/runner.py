"""Drive waitress: the WSGI app under limits, with a graceful, bounded shutdown (run.py wires it up).

waitress's own ``run()`` only ends when every connection is gone, and its
``close()`` leaves open keep-alive connections serving. So we drive its event
loop ourselves: on ``shutdown()`` we stop accepting, let in-flight requests
finish for ``grace`` seconds, ask the caller to cancel what is left, close
every connection, and run the shutdown hooks, all on the loop's own thread.

waitress answers protocol errors itself (malformed request, headers or body
over the limits) before the app sees the request; ``JsonErrorTask`` writes
those in the shape of the API that was called too.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable

import waitress
from waitress import wasyncore
from waitress.channel import HTTPChannel
from waitress.task import ErrorTask

from mlxcli.server import errors
from mlxcli.server.settings import ServerSettings

log = logging.getLogger("mlxcli.server")

POLL_SECONDS = 0.2
# Requests a connection may have read ahead while one is served: lets waitress see a client hang up.
LOOKAHEAD = 4


class JsonErrorTask(ErrorTask):
    """waitress's protocol errors (400, 413, 431, ...) as the called API's JSON error."""

    def execute(self) -> None:
        error = self.request.error
        err = errors.from_status(error.code, f"{error.reason}: {error.body}")
        # A malformed request line or header leaves no path: answer in the default (OpenAI) shape.
        status, headers, body = errors.render_for_path(err, getattr(self.request, "path", None) or "/")
        self.status = errors.status_line(status)
        self.response_headers.extend([("Content-Type", "application/json"), *headers])
        self.set_close_on_finish()
        self.content_length = len(body)
        self.write(body)


class Channel(HTTPChannel):
    error_task_class = JsonErrorTask


class HttpServer:
    def __init__(self, app, *, host: str = "127.0.0.1", port: int = 8000, threads: int = 16, **adjustments):
        adjustments.setdefault("channel_request_lookahead", LOOKAHEAD)
        self._server = waitress.create_server(
            app, host=host, port=port, threads=threads, ident="mlxcli", clear_untrusted_proxy_headers=True, **adjustments
        )
        self._server.channel_class = Channel
        self._stop = threading.Event()
        self._force = threading.Event()
        self._trigger_lock = threading.Lock()
        self._trigger_closed = False

    @classmethod
    def for_settings(cls, app, settings: ServerSettings, *, threads: int, port: int | None = None) -> "HttpServer":
        return cls(
            app,
            host=settings.host,
            port=settings.port if port is None else port,
            threads=threads,
            max_request_header_size=settings.max_header_bytes,
            # waitress reads the whole body before the app runs: cap it there. Bodies over the limit
            # by less than the margin are read and refused by the app (a clean 413 the client reads);
            # beyond it waitress refuses as soon as it sees Content-Length.
            max_request_body_size=(body := max(settings.max_body_bytes, settings.max_upload_bytes)) + min(body, 1 << 20),
        )

    @property
    def port(self) -> int:
        return int(self._server.effective_port)

    @property
    def host(self) -> str:
        return str(self._server.effective_host)

    def shutdown(self, *, force: bool = False, wake: bool = True) -> None:
        """Ask the loop to stop (safe from a signal handler or any thread); ``force`` skips the grace period.
        ``wake``: wake the loop now rather than at its next poll (not from a signal handler: the trigger's
        lock may be held by the very thread the signal interrupted)."""
        if force:
            self._force.set()
        self._stop.set()
        if wake:
            with self._trigger_lock:  # never a write to a closed (and maybe reused) descriptor
                if not self._trigger_closed:
                    self._server.trigger.pull_trigger()

    def serve(
        self,
        *,
        grace: float = 10.0,
        cancel_in_flight: Callable[[], None] = lambda: None,
        on_stopped: Callable[[], None] = lambda: None,
    ) -> None:
        """Serve until ``shutdown()``, drain for up to ``grace`` seconds, then run ``on_stopped``."""
        server = self._server
        try:
            while not self._stop.is_set():
                self._poll()
            wasyncore.dispatcher.close(server)  # stop accepting; keep the trigger for replies in flight
            self._drain(grace)
            if self._busy():
                log.warning("cancelling requests still running after %gs", grace)
                cancel_in_flight()
                self._drain(2.0, interruptible=False)  # let cancelled streams write their last frame
            for channel in self._channels():
                channel.close()
            server.task_dispatcher.shutdown(timeout=2)
            with self._trigger_lock:
                self._trigger_closed = True
                server.trigger.close()
        finally:
            on_stopped()

    def _poll(self) -> None:
        server = self._server
        server.asyncore.loop(timeout=POLL_SECONDS, map=server._map, use_poll=server.adj.asyncore_use_poll, count=1)

    def _channels(self) -> list[HTTPChannel]:
        return [c for c in list(self._server._map.values()) if isinstance(c, HTTPChannel)]

    def _busy(self) -> bool:
        return any(c.requests or c.total_outbufs_len for c in self._channels())

    def _drain(self, seconds: float, *, interruptible: bool = True) -> None:
        deadline = time.monotonic() + seconds
        while self._busy() and time.monotonic() < deadline and not (interruptible and self._force.is_set()):
            self._poll()

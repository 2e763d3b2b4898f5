"""Run the WSGI app under waitress with a graceful, bounded shutdown.

waitress's own ``run()`` only ends when every connection is gone, and its
``close()`` leaves open keep-alive connections serving. So we drive its event
loop ourselves: on ``shutdown()`` we stop accepting, let in-flight requests
finish for ``grace`` seconds, ask the caller to cancel what is left, flush,
and close every connection, all on the loop's own thread.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable

import waitress
from waitress import wasyncore
from waitress.channel import HTTPChannel

log = logging.getLogger("mlxcli.server")

POLL_SECONDS = 0.2


class HttpServer:
    def __init__(self, app, *, host: str = "127.0.0.1", port: int = 8000, threads: int = 16, **adjustments):
        self._server = waitress.create_server(
            app, host=host, port=port, threads=threads, ident="mlxcli", clear_untrusted_proxy_headers=True, **adjustments
        )
        self._stop = threading.Event()

    @property
    def port(self) -> int:
        return int(self._server.effective_port)

    @property
    def host(self) -> str:
        return str(self._server.effective_host)

    def shutdown(self) -> None:
        """Ask the loop to stop (safe from a signal handler or any thread)."""
        self._stop.set()

    def serve(self, *, grace: float = 10.0, cancel_in_flight: Callable[[], None] = lambda: None) -> None:
        """Serve until ``shutdown()``, then drain for up to ``grace`` seconds."""
        server = self._server
        while not self._stop.is_set():
            self._poll()
        wasyncore.dispatcher.close(server)  # stop accepting; keep the trigger for replies in flight
        self._drain(grace)
        if self._busy():
            log.warning("cancelling requests still running after %.0fs", grace)
            cancel_in_flight()
            self._drain(2.0)
        for channel in self._channels():
            channel.close()
        server.task_dispatcher.shutdown(timeout=2)
        server.trigger.close()

    def _poll(self) -> None:
        server = self._server
        server.asyncore.loop(timeout=POLL_SECONDS, map=server._map, use_poll=server.adj.asyncore_use_poll, count=1)

    def _channels(self) -> list[HTTPChannel]:
        return [c for c in list(self._server._map.values()) if isinstance(c, HTTPChannel)]

    def _busy(self) -> bool:
        return any(c.requests or c.total_outbufs_len for c in self._channels())

    def _drain(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while self._busy() and time.monotonic() < deadline:
            self._poll()

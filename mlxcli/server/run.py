"""One server and one way to stop it, for `mlxcli serve` and the tests alike.

``Server`` puts the app around an engine and a store on waitress; ``serve()`` blocks until
``shutdown()``, then in-flight requests get ``shutdown_timeout`` seconds, what is left is
cancelled, and the shutdown hooks run (the store is closed last: no more answers to store).
``run_server`` adds what only a process does: signals, the start-up log, stopping the engine.
"""

from __future__ import annotations

import logging
import signal
import threading

from mlxcli.core.engine import Engine
from mlxcli.server.app import create_app
from mlxcli.server.middleware import is_loopback
from mlxcli.server.runner import HttpServer
from mlxcli.server.settings import ServerSettings
from mlxcli.server.shutdown import ShutdownHooks
from mlxcli.store import ConversationStore

log = logging.getLogger("mlxcli.serve")


class Server:
    def __init__(self, engine: Engine, settings: ServerSettings, store: ConversationStore | None = None, *, port: int | None = None):
        settings.check(engine.capacity)
        self.engine = engine
        self.settings = settings
        self.store = (store if store is not None else ConversationStore.memory()).start()
        self.hooks = ShutdownHooks()
        self.hooks.add(self.store.close)  # hooks run last-added first: this one runs last
        self.app = create_app(engine, settings, self.store, shutdown=self.hooks)
        self.http = HttpServer.for_settings(self.app, settings, threads=settings.worker_threads(engine.capacity), port=port)

    @property
    def url(self) -> str:
        return f"http://{self.http.host}:{self.http.port}"

    def serve(self) -> None:
        """Serve until ``shutdown()``; every hook has run when this returns."""
        try:
            self.http.serve(
                grace=self.settings.shutdown_timeout,
                cancel_in_flight=lambda: self.engine.stop(grace=0),
                on_stopped=self.hooks.run,
            )
        finally:
            self.hooks.run()  # once: a no-op when serve() already ran them

    def shutdown(self, *, force: bool = False, wake: bool = True) -> None:
        """Stop serving (safe from a signal handler or any thread, with ``wake`` off in a signal handler);
        ``force`` skips the grace period."""
        self.http.shutdown(force=force, wake=wake)


def run_server(engine: Engine, settings: ServerSettings, store: ConversationStore) -> None:
    """`mlxcli serve`: serve until SIGINT or SIGTERM (a second one cancels in-flight requests at once)."""
    server = Server(engine, settings, store)
    signals_seen: list[str] = []

    def on_signal(signum, _frame) -> None:
        name = signal.Signals(signum).name
        signals_seen.append(name)
        if len(signals_seen) > 1:
            log.warning("received %s again: cancelling in-flight requests now", name)
            server.shutdown(force=True, wake=False)
            return
        log.info("received %s: finishing in-flight requests (up to %.0fs), then stopping", name, settings.shutdown_timeout)
        server.shutdown(wake=False)

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, on_signal)
        signal.signal(signal.SIGTERM, on_signal)
    if not is_loopback(settings.host) and not settings.api_keys:
        log.warning("listening on %s without an API key: anyone who can reach it can use this server (see --api-key)", settings.host)
    names = ", ".join(m.name + (f" (aliases: {', '.join(m.aliases)})" if m.aliases else "") for m in engine.models())
    host, port = settings.host, server.http.port
    log.info("serving %s on http://%s:%d (OpenAI base URL http://%s:%d/v1)", names, host, port, host, port)
    if settings.ui:
        log.info("chat in a browser: http://%s:%d/ui", host, port)
    try:
        server.serve()
    finally:
        engine.stop(grace=0)
        log.info("stopped")

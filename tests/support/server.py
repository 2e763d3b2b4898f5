"""A real waitress server on an ephemeral loopback port, in a background thread."""

from __future__ import annotations

import threading

from mlxcli.engine.engine import MlxEngine
from mlxcli.server.app import create_app
from mlxcli.server.runner import HttpServer
from mlxcli.server.settings import ServerSettings
from mlxcli.server.shutdown import ShutdownHooks


class RunningServer:
    """Stopped by ``close()`` the way `mlxcli serve` stops on SIGTERM: in-flight requests get
    ``grace`` seconds, then the engine cancels them, then the app's shutdown ``hooks`` run."""

    def __init__(self, engine: MlxEngine, settings: ServerSettings | None = None, store=None, *, grace: float = 0.5):
        self.engine = engine
        self.settings = settings or ServerSettings(port=0)
        self.hooks = ShutdownHooks()
        self.app = create_app(engine, self.settings, store, shutdown=self.hooks)
        self.http = HttpServer.for_settings(self.app, self.settings, port=0)
        self.url = f"http://127.0.0.1:{self.http.port}"
        self.grace = grace
        self._thread = threading.Thread(
            target=self.http.serve,
            kwargs={"grace": grace, "cancel_in_flight": lambda: engine.stop(grace=0), "on_stopped": self.hooks.run},
            daemon=True,
        )
        self._thread.start()

    def close(self) -> None:
        self.http.shutdown()
        self._thread.join(timeout=self.grace + 10)

    def __enter__(self) -> "RunningServer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

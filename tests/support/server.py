"""A real waitress server on an ephemeral loopback port, in a background thread."""

from __future__ import annotations

import threading

from mlxcli.engine.engine import Engine
from mlxcli.server.app import create_app
from mlxcli.server.runner import HttpServer
from mlxcli.server.settings import ServerSettings


class RunningServer:
    def __init__(self, engine: Engine, settings: ServerSettings | None = None, store=None):
        self.engine = engine
        self.settings = settings or ServerSettings(port=0)
        self.http = HttpServer(create_app(engine, self.settings, store), host="127.0.0.1", port=0, threads=self.settings.threads)
        self.url = f"http://127.0.0.1:{self.http.port}"
        self._thread = threading.Thread(target=self.http.serve, kwargs={"grace": 0.5}, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.http.shutdown()
        self._thread.join(timeout=10)

    def __enter__(self) -> "RunningServer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

"""A real server on an ephemeral loopback port, in a background thread: production's ``Server``."""

from __future__ import annotations

import threading
from dataclasses import replace

from mlxcli.core.engine import Engine
from mlxcli.server.run import Server
from mlxcli.server.settings import ServerSettings
from tests.support.spec_check import SpecCheck


class RunningServer:
    """Stopped by ``close()`` the way `mlxcli serve` stops on SIGTERM: in-flight requests get
    ``grace`` seconds, then the engine cancels them, then the shutdown ``hooks`` run (the store's
    ``close`` last). The engine is the test's to stop. Every answer is checked against the official SDKs'
    models (spec_check.py): ``close`` raises what did not validate."""

    def __init__(self, engine: Engine, settings: ServerSettings | None = None, store=None, *, grace: float = 0.5):
        settings = replace(settings or ServerSettings(port=0), shutdown_timeout=grace)
        self.engine = engine
        self.server = Server(engine, settings, store, port=0)
        self.spec = SpecCheck()
        self.server.app.add_middleware(self.spec)  # before the first request: Falcon allows it until then
        self.http = self.server.http
        self.hooks = self.server.hooks
        self.url = f"http://127.0.0.1:{self.http.port}"
        self.grace = grace
        self._thread = threading.Thread(target=self.server.serve, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self._thread.join(timeout=self.grace + 10)
        problems, self.spec.problems = self.spec.problems, []
        assert not problems, "answers that do not validate against the SDKs' models:\n" + "\n".join(problems[:5])

    def __enter__(self) -> "RunningServer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

"""mlxcli's own routes, beside the providers' APIs: ``/health`` and the models in memory."""

from __future__ import annotations

from typing import Any

import falcon

from mlxcli.core.engine import ModelStatus
from mlxcli.server.context import ServerContext
from mlxcli.server.http import send_json


def status_json(status: ModelStatus) -> dict[str, Any]:
    """A model's state in memory, for `mlxcli ps` (times are Unix seconds)."""
    return {
        "name": status.name,
        "kind": status.kind,
        "aliases": list(status.aliases),
        "state": status.state,
        "context_window": status.context_window,
        "active_requests": status.active,
        "size_bytes": status.weight_bytes,
        "dtype": status.dtype,
        "load_seconds": _rounded(status.load_seconds),
        "loaded_at": _rounded(status.loaded_at),
        "last_used": _rounded(status.last_used),
        "unloads_at": _rounded(status.unloads_at),
    }


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


class Health:
    def __init__(self, ctx: ServerContext):
        self.ctx = ctx

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        engine = self.ctx.engine
        alive = engine.alive
        body = {
            "status": "ok" if alive else "error",
            "model": engine.default_model,
            **engine.stats(),  # queue_depth, active_requests: inside the engine
            "in_flight": self.ctx.admission.in_flight,  # HTTP requests holding a slot (streams included)
            "max_in_flight": self.ctx.admission.limit,
        }
        if not alive:
            body["error"] = "the engine thread is not running; restart the server"
        send_json(resp, body, status=200 if alive else 503)


class RunningModels:
    """``GET /api/ps``: the models in memory (or loading), for `mlxcli ps`."""

    def __init__(self, ctx: ServerContext):
        self.ctx = ctx

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        models = [status_json(s) for s in self.ctx.engine.models() if s.state != "unloaded"]
        send_json(resp, {"models": models, **self.ctx.engine.stats()})

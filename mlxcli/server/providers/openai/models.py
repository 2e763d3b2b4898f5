"""``GET /v1/models`` and ``/v1/models/{id}``: every configured model, loaded or not."""

from __future__ import annotations

from typing import Any

import falcon

from mlxcli.core.engine import Engine, ModelStatus
from mlxcli.core.errors import ModelNotFound
from mlxcli.core.request import now
from mlxcli.server.http import send_json

STARTED_AT = now()


def model_json(status: ModelStatus) -> dict[str, Any]:
    """OpenAI's fields plus the context window, aliases and whether it is loaded."""
    return {
        "id": status.name,
        "object": "model",
        "created": STARTED_AT,
        "owned_by": "mlxcli",
        "kind": status.kind,  # chat, embedding, ...: which requests it answers
        "capabilities": list(status.capabilities) or [status.kind],
        "context_window": status.context_window,
        "aliases": list(status.aliases),
        "loaded": status.state == "loaded",
    }


class Models:
    def __init__(self, engine: Engine):
        self.engine = engine

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        send_json(resp, {"object": "list", "data": [model_json(s) for s in self.engine.models()]})

    def on_get_one(self, req: falcon.Request, resp: falcon.Response, model_id: str) -> None:
        name = self.engine.lookup(model_id)
        if name is None:
            raise ModelNotFound(f"The model `{model_id}` does not exist.", param="model")
        send_json(resp, model_json(next(s for s in self.engine.models() if s.name == name)))

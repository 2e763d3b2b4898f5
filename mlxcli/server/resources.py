"""Falcon resources: the glue between a provider's wire format and the engine."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import falcon

from mlxcli.core.collect import Completion, collect
from mlxcli.core.errors import ModelNotFound
from mlxcli.core.request import ChatRequest, now
from mlxcli.engine.engine import Engine
from mlxcli.server import disconnect, middleware, sse
from mlxcli.server.http import read_json, send_json
from mlxcli.server.middleware import Admission
from mlxcli.server.settings import ServerSettings
from mlxcli.server.shutdown import ShutdownHooks

STARTED_AT = now()


@dataclass
class ServerContext:
    engine: Engine
    settings: ServerSettings
    admission: Admission
    shutdown: ShutdownHooks = field(default_factory=ShutdownHooks)  # flush/close what the server holds

    def model_name(self, requested: str | None) -> str:
        """The name echoed back: what the client asked for, else the served model's name."""
        return requested or self.engine.name


class ChatProvider(Protocol):
    name: str

    def parse(self, body: dict[str, Any]) -> tuple[ChatRequest, dict[str, Any]]: ...

    def response(self, completion: Completion, model: str, options: dict[str, Any]) -> dict[str, Any]: ...

    def stream_encoder(self, model: str, options: dict[str, Any]) -> sse.StreamEncoder: ...


class Generate:
    """POST a chat request in any provider's format; JSON or SSE back."""

    def __init__(self, ctx: ServerContext, provider: ChatProvider):
        self.ctx = ctx
        self.provider = provider

    def on_post(self, req: falcon.Request, resp: falcon.Response, **_params: Any) -> None:
        body = read_json(req, self.ctx.settings.max_body_bytes)
        request, options = self.provider.parse(body)
        request.request_id = req.context.request_id
        model = self.ctx.model_name(request.model)
        generation = self.ctx.engine.submit(request)  # errors before the 200 are plain HTTP errors
        if options.get("stream"):
            req.context.streaming = True
            resp.content_type = "text/event-stream"
            resp.set_header("Cache-Control", "no-cache")
            resp.set_header("X-Accel-Buffering", "no")
            resp.stream = sse.stream(
                generation,
                self.provider.stream_encoder(model, options),
                keepalive_seconds=self.ctx.settings.keepalive_seconds,
                on_finish=middleware.finish_stream(req, 200),
            )
            return
        try:
            completion = collect(disconnect.events(generation))
        finally:
            generation.cancel()
        req.context.usage_tokens = middleware.usage_tokens(completion.finish)
        send_json(resp, self.provider.response(completion, model, options))


class Models:
    def __init__(self, ctx: ServerContext):
        self.ctx = ctx

    def _entry(self) -> dict[str, Any]:
        engine = self.ctx.engine
        return {
            "id": engine.name,
            "object": "model",
            "created": STARTED_AT,
            "owned_by": "mlxcli",
            "context_window": engine.context_window,
        }

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        send_json(resp, {"object": "list", "data": [self._entry()]})

    def on_get_one(self, req: falcon.Request, resp: falcon.Response, model_id: str) -> None:
        if model_id != self.ctx.engine.name:
            raise ModelNotFound(f"The model `{model_id}` does not exist.", param="model")
        send_json(resp, self._entry())


class Health:
    def __init__(self, ctx: ServerContext):
        self.ctx = ctx

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        engine = self.ctx.engine
        alive = engine.alive
        body = {
            "status": "ok" if alive else "error",
            "model": engine.name,
            **engine.stats(),  # queue_depth, active_requests: inside the engine
            "in_flight": self.ctx.admission.in_flight,  # HTTP requests holding a slot (streams included)
            "max_in_flight": self.ctx.admission.limit,
        }
        if not alive:
            body["error"] = "the engine thread is not running; restart the server"
        send_json(resp, body, status=200 if alive else 503)

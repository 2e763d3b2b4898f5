"""Falcon resources: the glue between a provider's wire format and the engine."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

import falcon

from mlxcli.core.collect import Completion, collect
from mlxcli.core.errors import ModelNotFound
from mlxcli.core.request import ChatRequest, now
from mlxcli.engine.engine import Engine
from mlxcli.server import middleware, sse
from mlxcli.server.http import read_json, send_json
from mlxcli.server.settings import ServerSettings
from mlxcli.store import ConversationStore, Turn

STARTED_AT = now()


@dataclass
class ServerContext:
    engine: Engine
    settings: ServerSettings
    store: ConversationStore = field(default_factory=ConversationStore.memory)

    def model_name(self, requested: str | None) -> str:
        """The name echoed back: what the client asked for, else the served model's name."""
        return requested or self.engine.name


class ChatProvider(Protocol):
    name: str

    def parse(self, body: dict[str, Any]) -> tuple[ChatRequest, dict[str, Any]]: ...

    def response(self, completion: Completion, model: str, options: dict[str, Any]) -> dict[str, Any]: ...

    def stream_encoder(self, model: str, options: dict[str, Any]) -> sse.StreamEncoder: ...

    def turn(self, request: ChatRequest, completion: Completion, model: str, options: dict[str, Any]) -> Turn | None:
        """What to store for a finished answer (called only when the request is to be stored)."""
        ...


class Generate:
    """POST a chat request in any provider's format; JSON or SSE back.

    A request is stored when its options say ``store`` (the Responses API by
    default), or, when they do not say, if the server stores stateless APIs
    (``--store-chat``). The answer is stored before it is acknowledged: before the
    JSON is sent, or before the stream's final event.
    """

    def __init__(self, ctx: ServerContext, provider: ChatProvider):
        self.ctx = ctx
        self.provider = provider

    def on_post(self, req: falcon.Request, resp: falcon.Response, **_params: Any) -> None:
        body = read_json(req, self.ctx.settings.max_body_bytes)
        request, options = self.provider.parse(body)
        request.request_id = req.context.request_id
        model = self.ctx.model_name(request.model)
        generation = self.ctx.engine.submit(request)  # errors before the 200 are plain HTTP errors
        record = self._recorder(request, model, options)
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
                on_complete=record,
            )
            return
        try:
            completion = collect(generation)
        finally:
            generation.cancel()
        req.context.usage_tokens = middleware.usage_tokens(completion.finish)
        body = self.provider.response(completion, model, options)
        if record is not None:
            record(completion)
        send_json(resp, body)

    def _recorder(self, request: ChatRequest, model: str, options: dict[str, Any]) -> Callable[[Completion], None] | None:
        store = options.get("store")
        if not (self.ctx.settings.store_chat if store is None else store):
            return None

        def record(completion: Completion) -> None:
            if completion.finish is None or completion.finish.reason == "cancelled":
                return  # never acknowledged as an answer
            turn = self.provider.turn(request, completion, model, options)
            if turn is not None:
                turn.model = self.ctx.engine.name  # the model that answered, whatever name the client used
                self.ctx.store.record(turn)

        return record


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
        send_json(
            resp,
            {"status": "ok" if alive else "error", "model": engine.name, **engine.stats()},
            status=200 if alive else 503,
        )

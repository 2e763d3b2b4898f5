"""Falcon resources: the glue between a provider's wire format and the engine."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

import falcon

from mlxcli.core.collect import Completion, collect
from mlxcli.core.errors import ModelNotFound
from mlxcli.core.request import ChatRequest, now
from mlxcli.engine.engine import MlxEngine
from mlxcli.engine.registry import ModelStatus
from mlxcli.server import disconnect, middleware, sse
from mlxcli.server.http import read_json, send_json
from mlxcli.server.middleware import Admission
from mlxcli.server.settings import ServerSettings
from mlxcli.server.shutdown import ShutdownHooks
from mlxcli.store import ConversationStore, Turn

STARTED_AT = now()


@dataclass
class ServerContext:
    engine: Engine
    settings: ServerSettings
    admission: Admission
    store: ConversationStore = field(default_factory=ConversationStore.memory)
    shutdown: ShutdownHooks = field(default_factory=ShutdownHooks)  # flush/close what the server holds

    def model_name(self, requested: str | None) -> str:
        """Map a requested model name to a served model; return the name to echo back.

        Every provider calls this with the name its client used (OpenAI/Anthropic ``model``,
        an Azure deployment), before submitting, with ``request.model`` set to that name
        (the engine routes by it). Raises ModelNotFound (404 in the provider's shape)
        when several models are served and none answers to ``requested``, or a single
        model is served with ``--strict-model-names``. The client's own name is echoed
        back (clients send names like ``gpt-4o``); the served name when it sent none.
        """
        model = self.engine.resolve(requested)
        return requested or model.name


class ChatProvider(Protocol):
    """A wire format for chat. ``options`` carries what ``parse`` found for the encoder; ``Generate``
    adds ``prompt_tokens`` once the prompt is rendered (Anthropic reports it in its first event)."""

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
        # A model named by the route (an Azure deployment) wins over the body's.
        request.model = req.context.get("route_model") or request.model
        model = self.ctx.model_name(request.model)
        generation = self.ctx.engine.submit(request)  # errors before the 200 are plain HTTP errors
        options["prompt_tokens"] = generation.prompt_tokens
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
            completion = collect(disconnect.events(generation))
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
                turn.model = self.ctx.engine.resolve(request.model).name  # the model that answered, whatever name the client used
                self.ctx.store.record(turn)

        return record


def model_json(status: ModelStatus) -> dict[str, Any]:
    """A /v1/models entry: OpenAI's fields plus the context window, aliases and whether it is loaded."""
    return {
        "id": status.name,
        "object": "model",
        "created": STARTED_AT,
        "owned_by": "mlxcli",
        "context_window": status.context_window,
        "aliases": list(status.aliases),
        "loaded": status.state == "loaded",
    }


def status_json(status: ModelStatus) -> dict[str, Any]:
    """A model's state in memory, for `mlxcli ps` (times are Unix seconds)."""
    return {
        "name": status.name,
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


class TokenCounter(Protocol):
    def parse_count(self, body: dict[str, Any]) -> ChatRequest: ...

    def count_response(self, input_tokens: int) -> dict[str, Any]: ...


class CountTokens:
    """POST a prompt in a provider's format; its length in tokens under the real chat template."""

    def __init__(self, ctx: ServerContext, provider: TokenCounter):
        self.ctx = ctx
        self.provider = provider

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        request = self.provider.parse_count(read_json(req, self.ctx.settings.max_body_bytes))
        rendered = self.ctx.engine.render(request)
        send_json(resp, self.provider.count_response(len(rendered.tokens)))


class Models:
    """Every configured model, loaded or not."""

    def __init__(self, ctx: ServerContext):
        self.ctx = ctx

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        send_json(resp, {"object": "list", "data": [model_json(s) for s in self.ctx.engine.models()]})

    def on_get_one(self, req: falcon.Request, resp: falcon.Response, model_id: str) -> None:
        model = self.ctx.engine.registry.lookup(model_id)
        if model is None:
            raise ModelNotFound(f"The model `{model_id}` does not exist.", param="model")
        status = next(s for s in self.ctx.engine.models() if s.name == model.name)
        send_json(resp, model_json(status))


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


class RunningModels:
    """``GET /api/ps``: the models in memory (or loading), for `mlxcli ps`."""

    def __init__(self, ctx: ServerContext):
        self.ctx = ctx

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        models = [status_json(s) for s in self.ctx.engine.models() if s.state != "unloaded"]
        send_json(resp, {"models": models, **self.ctx.engine.stats()})

"""The chat resource every provider uses: parse its body into a Call, submit, answer as JSON or a stream.

A request is stored when its call says ``store`` (the Responses API by default), or, when it
does not say, if the server stores stateless APIs (``--store-chat``). The answer is stored
before it is acknowledged: before the JSON is sent, or before the stream's final event. A
conversation shortened to fit the window (``--context-overflow``) says so in a header.
"""

from __future__ import annotations

from typing import Any, Callable

import falcon

from mlxcli.core.collect import Completion, collect
from mlxcli.server import disconnect, images, middleware
from mlxcli.server.context import ServerContext
from mlxcli.server.http import read_json, send_json
from mlxcli.server.providers.base import Call, Provider
from mlxcli.server.stream import EventStream


CONTEXT_HEADER = "Mlxcli-Context-Overflow"


class Generate:
    """POST a chat request in one provider's format. A model named by the route (an Azure
    deployment: the ``deployment`` URI field) wins over the body's."""

    def __init__(self, ctx: ServerContext, parse: Callable[[dict[str, Any]], Call], provider: Provider):
        self.ctx = ctx
        self.parse = parse
        self.provider = provider
        self.framing = provider.framing

    def on_post(self, req: falcon.Request, resp: falcon.Response, deployment: str | None = None) -> None:
        req.context.api = self.provider.name  # for the access log
        body = read_json(req, self.ctx.settings.max_body_bytes)
        with images.fetching(self.ctx.settings.image_fetch):  # image URLs are fetched while parsing, if allowed
            call = self.parse(body)
        self.answer(req, resp, call, deployment)

    def answer(self, req: falcon.Request, resp: falcon.Response, call: Call, deployment: str | None = None) -> None:
        """Submit a parsed call; answer as JSON or a stream."""
        request = call.request
        request.request_id = req.context.request_id
        request.model = deployment or request.model
        submitted = self.ctx.engine.submit(request)  # errors before the 200 are plain HTTP errors
        model = request.model or submitted.model  # the client's own name is echoed back (clients send names like gpt-4o)
        generation = self.ctx.metrics.track(submitted, api=self.provider.name, model=submitted.model)
        if generation.compaction is not None:  # the conversation outgrew the window: say what the model saw
            c = generation.compaction
            resp.set_header(CONTEXT_HEADER, f"{c.policy}; dropped={c.dropped}")
        record = self._recorder(call, model, submitted.model)
        if call.stream:
            req.context.streaming = True
            resp.content_type = self.framing.media_type
            for name, value in self.framing.headers:
                resp.set_header(name, value)
            resp.stream = EventStream(
                generation,
                call.encoder(model, generation.prompt_tokens),
                keepalive=self.framing.keepalive,
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
        body = call.response(completion, model)
        if record is not None:
            record(completion)
        send_json(resp, body)

    def _recorder(self, call: Call, model: str, served: str) -> Callable[[Completion], None] | None:
        if not (self.ctx.settings.store_chat if call.store is None else call.store):
            return None

        def record(completion: Completion) -> None:
            if completion.finish is None or completion.finish.reason == "cancelled":
                return  # never acknowledged as an answer
            turn = call.turn(completion, model)
            if turn is not None:
                turn.model = served  # the model that answered, whatever the client called it
                self.ctx.store.record(turn)

        return record

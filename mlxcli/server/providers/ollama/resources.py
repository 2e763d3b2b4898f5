"""Ollama's chat and generate resource (the shared Generate, plus load requests and the thinking
check), its root and its version."""

from __future__ import annotations

import falcon

from mlxcli.core.errors import InvalidRequest
from mlxcli.server.generate import Generate
from mlxcli.server.http import send_json
from mlxcli.server.providers.ollama.models import load_model, served_status
from mlxcli.server.providers.ollama.request import OllamaCall, read_body

# The Ollama release whose API this provider follows: clients decide what to send (tools, thinking)
# from the version they are told.
API_VERSION = "0.32.15"


class Chat(Generate):
    """``POST /api/chat`` and ``/api/generate``."""

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        req.context.api = self.provider.name  # for the access log
        call: OllamaCall = self.parse(read_body(req, self.ctx.settings.max_body_bytes))
        status = served_status(self.ctx, call.request.model)  # an unknown model: 404 before anything
        if call.request.reasoning not in (None, "off") and not status.details.reasoning:
            raise InvalidRequest(f'"{call.model}" does not support thinking', param="think")
        if call.load:
            self._load(resp, call)
        else:
            self.answer(req, resp, call)

    def _load(self, resp: falcon.Response, call: OllamaCall) -> None:
        """Nothing to ask: load the model (or unload it, keep_alive 0) and say so."""
        load_model(self.ctx, call.request.model, call.request.keep_alive)
        send_json(resp, call.loaded())


class Root:
    """``GET /`` and ``HEAD /``: what Ollama's root says, which clients check for; a browser (which
    asks for HTML) is sent on to the chat page when the server has one."""

    def __init__(self, page: str | None = None) -> None:
        self.page = page

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        if self.page and "text/html" in (req.accept or ""):
            raise falcon.HTTPSeeOther(self.page)
        resp.content_type = falcon.MEDIA_TEXT
        resp.text = "Ollama is running"

    on_head = on_get


class Version:
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        send_json(resp, {"version": API_VERSION})

    on_head = on_get


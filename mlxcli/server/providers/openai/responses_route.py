"""The Responses route: ``POST`` answers (``Generate``); a WebSocket handshake on ``GET`` is refused with 426.

Codex speaks the Responses API over a WebSocket first (``GET /v1/responses`` with ``Upgrade: websocket``,
then ``response.create`` frames) when its provider says ``supports_websockets``, as its built-in OpenAI
provider does when ``openai_base_url`` points it here. Waitress cannot hand a connection over to another
protocol, so the handshake is refused, with the one status Codex reads as "this server has no WebSocket"
(``426 Upgrade Required``: codex-rs/core/src/client.rs falls back to HTTP for the rest of the session at
once). Any other answer (405, a reset) is retried five times with back-off first: ~6 s lost per session.
"""

from __future__ import annotations

import falcon

from mlxcli.core.errors import InvalidRequest
from mlxcli.server.generate import Generate


class UpgradeRequired(InvalidRequest):
    status = 426
    default_code = "websocket_not_supported"


class Responses(Generate):
    def on_get(self, req: falcon.Request, resp: falcon.Response, deployment: str | None = None) -> None:
        if "websocket" not in (req.get_header("Upgrade") or "").lower():
            raise falcon.HTTPMethodNotAllowed(["POST", "OPTIONS"])
        req.context.api = self.provider.name  # for the access log
        raise UpgradeRequired(
            "This server does not serve the Responses API over WebSocket: send POST /v1/responses (streamed over HTTP)."
        )

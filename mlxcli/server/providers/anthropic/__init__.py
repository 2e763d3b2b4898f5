"""The Anthropic Messages API (Claude Code and the Anthropic SDKs): ``/v1/messages`` and token counting."""

from __future__ import annotations

from typing import TYPE_CHECKING

import falcon

from mlxcli.server.framing import SSE
from mlxcli.server.generate import Generate
from mlxcli.server.http import read_json, send_json
from mlxcli.server.providers.anthropic import request
from mlxcli.server.providers.anthropic.errors import error_body, error_status
from mlxcli.server.providers.base import Provider, Route
from mlxcli.server.validate import Obj

if TYPE_CHECKING:
    from mlxcli.server.context import ServerContext


class CountTokens:
    """``POST /v1/messages/count_tokens``: the prompt's length in tokens under the model's real chat template."""

    def __init__(self, ctx: "ServerContext"):
        self.ctx = ctx

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        prompt = request.parse_prompt(Obj(read_json(req, self.ctx.settings.max_body_bytes)))
        send_json(resp, {"input_tokens": self.ctx.engine.count_tokens(prompt)})


def routes(ctx: "ServerContext") -> list[Route]:
    return [
        Route("/v1/messages", Generate(ctx, request.parse, PROVIDER)),
        Route("/v1/messages/count_tokens", CountTokens(ctx)),
    ]


PROVIDER = Provider(
    name="anthropic",
    prefixes=("/v1/messages", "/anthropic/"),
    error_body=error_body,
    error_status=error_status,
    framing=SSE,
    routes=routes,
)

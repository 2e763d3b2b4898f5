"""Azure OpenAI (wire-formats §4): OpenAI's bodies under Azure's URLs, with Azure's error shape.

    /openai/deployments/{d}/chat/completions?api-version=V  Chat Completions (model = d)
    /openai/deployments/{d}/responses?api-version=V         Responses (model = d)
    /openai/deployments/{d}/embeddings?api-version=V        Embeddings (model = d)
    /openai/deployments/{d}/images/generations|edits?api-version=V  Images (model = d)
    /openai/deployments/{d}/audio/{transcriptions|translations}?api-version=V  Audio (model = d)
    /openai/responses[/{id}[/input_items]]?api-version=V    Responses (model from the body), stored responses
    /openai/models[/{id}]?api-version=V                     the model list
    /openai/v1/{chat/completions|responses…|embeddings|images/…|models…}  the v1 API: the same, without api-version
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import falcon

from mlxcli.core.errors import MlxcliError, ModelNotFound, RouteNotFound
from mlxcli.server.providers import openai
from mlxcli.server.providers.base import Provider, Route
from mlxcli.server.providers.openai.embeddings import Embed
from mlxcli.server.providers.openai.images import Images
from mlxcli.server.providers.openai.errors import TYPES

if TYPE_CHECKING:
    from mlxcli.server.context import ServerContext

PREFIX = "/openai"
V1 = PREFIX + "/v1/"
DEPLOYMENT_ONLY = ("/chat/completions", "/embeddings", "/images/generations", "/images/edits", "/audio/transcriptions",
                   "/audio/translations")  # classic routes that name the model in the URL only


def error_body(err: MlxcliError) -> dict[str, Any]:
    if isinstance(err, ModelNotFound):  # on Azure a model is named by its deployment
        return {"error": {"code": "DeploymentNotFound", "message": "The API deployment for this resource does not exist."}}
    if isinstance(err, RouteNotFound):
        return {"error": {"code": "404", "message": "Resource not found"}}
    error: dict[str, Any] = {"code": err.code or TYPES.get(err.kind, "server_error"), "message": err.message}
    if err.param:
        error["param"] = err.param  # as Azure passes OpenAI's validation errors through
    return {"error": error}


class ApiVersion:
    """The classic routes need ``api-version`` (any value: this server speaks every version); the v1 API does not."""

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        if req.path.startswith(PREFIX + "/") and not req.path.startswith(V1) and not req.get_param("api-version"):
            raise RouteNotFound()


def routes(ctx: "ServerContext") -> list[Route]:
    deployments = f"{PREFIX}/deployments/{{deployment}}"
    images = Images(ctx, PROVIDER)
    return [
        Route(f"{deployments}/chat/completions", openai.chat_resource(ctx, PROVIDER)),
        Route(f"{deployments}/responses", openai.responses_resource(ctx, PROVIDER)),
        Route(f"{deployments}/embeddings", Embed(ctx, PROVIDER)),
        Route(f"{deployments}/images/generations", images),
        Route(f"{deployments}/images/edits", images, "edit"),
        *openai.audio_routes(ctx, deployments, PROVIDER),
        *[r for r in openai.api_routes(ctx, PREFIX, PROVIDER) if not r.template.endswith(DEPLOYMENT_ONLY)],
        *openai.api_routes(ctx, PREFIX + "/v1", PROVIDER),
    ]


PROVIDER = Provider(
    name="azure",
    prefixes=(PREFIX + "/",),
    error_body=error_body,
    routes=routes,
    middleware=lambda ctx: [ApiVersion()],
)


"""Azure OpenAI routes (wire-formats §4), served by the OpenAI adapters.

Azure's bodies are OpenAI's; only the URLs and the error shape differ. So this
middleware maps each Azure URL onto its ``/v1/...`` route before Falcon routes
the request, remembers the deployment as the model, and marks the request as
Azure's for the error mapper:

    /openai/deployments/{d}/chat/completions?api-version=V  → /v1/chat/completions  (model = d)
    /openai/deployments/{d}/responses?api-version=V         → /v1/responses         (model = d)
    /openai/responses[/{id}[/input_items]]?api-version=V    → /v1/responses[...]    (model from the body)
    /openai/models[/{id}]?api-version=V                     → /v1/models[...]
    /openai/v1/{chat/completions|responses…|models…}        → /v1/...               (no api-version)
"""

from __future__ import annotations

import re

import falcon

from mlxcli.core.errors import NotFound

PREFIX = "/openai/"
DEPLOYMENT = re.compile(r"deployments/([^/]+)/(chat/completions|responses)")
CLASSIC = re.compile(r"(?:responses|models)(?:/.*)?")
V1 = re.compile(r"v1/((?:chat/completions|responses(?:/.*)?|models(?:/.*)?))")


def resource_not_found() -> NotFound:
    """What Azure answers for a URL it does not serve, or a classic route without ``api-version``."""
    return NotFound("Resource not found", code="404")


class AzureRoutes:
    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        if not req.path.startswith(PREFIX):
            return
        req.context.provider = "azure"
        rest = req.path[len(PREFIX) :]
        if v1 := V1.fullmatch(rest):
            req.path = "/v1/" + v1.group(1)
            return
        if not req.get_param("api-version"):
            raise resource_not_found()
        if deployment := DEPLOYMENT.fullmatch(rest):
            req.context.route_model = deployment.group(1)
            req.path = "/v1/" + deployment.group(2)
        elif CLASSIC.fullmatch(rest):
            req.path = "/v1/" + rest
        else:
            raise resource_not_found()

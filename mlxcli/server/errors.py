"""One error mapper per provider: neutral errors → each API's status and JSON shape."""

from __future__ import annotations

import logging
from typing import Any

import falcon
import orjson

from mlxcli.core.errors import (
    ContextLengthExceeded,
    InvalidRequest,
    MethodNotAllowed,
    MlxcliError,
    ModelNotFound,
    NotFound,
    PayloadTooLarge,
)

log = logging.getLogger("mlxcli.server")

OPENAI_TYPES = {
    "invalid_request": "invalid_request_error",
    "authentication": "invalid_request_error",
    "permission": "permission_error",
    "not_found": "invalid_request_error",
    "too_large": "invalid_request_error",
    "overloaded": "server_error",
    "server_error": "server_error",
}

ANTHROPIC_TYPES = {
    "invalid_request": "invalid_request_error",
    "authentication": "authentication_error",
    "permission": "permission_error",
    "not_found": "not_found_error",
    "too_large": "request_too_large",
    "overloaded": "overloaded_error",
    "server_error": "api_error",
}


def openai_body(err: MlxcliError) -> dict[str, Any]:
    return {
        "error": {
            "message": err.message,
            "type": OPENAI_TYPES.get(err.kind, "server_error"),
            "param": err.param,
            "code": err.code,
        }
    }


def anthropic_body(err: MlxcliError) -> dict[str, Any]:
    message = err.message
    if isinstance(err, ContextLengthExceeded):
        message = f"prompt is too long: {err.prompt_tokens} tokens > {err.context_window} maximum"
    elif err.param and err.param not in message:
        message = f"{err.param}: {message}"  # Anthropic's shape has no `param`; its own messages lead with the path
    return {"type": "error", "error": {"type": ANTHROPIC_TYPES.get(err.kind, "api_error"), "message": message}}


def azure_body(err: MlxcliError) -> dict[str, Any]:
    if isinstance(err, ModelNotFound):  # on Azure a model is named by its deployment
        return {"error": {"code": "DeploymentNotFound", "message": "The API deployment for this resource does not exist."}}
    error: dict[str, Any] = {"code": err.code or OPENAI_TYPES.get(err.kind, "server_error"), "message": err.message}
    if err.param:
        error["param"] = err.param  # as Azure passes OpenAI's validation errors through
    return {"error": error}


def anthropic_status(err: MlxcliError) -> int:
    return 529 if err.kind == "overloaded" else err.status


PROVIDERS = {
    "openai": (openai_body, lambda err: err.status),
    "anthropic": (anthropic_body, anthropic_status),
    "azure": (azure_body, lambda err: err.status),
}


def provider_for_path(path: str) -> str:
    if path.startswith("/v1/messages") or path.startswith("/anthropic/"):
        return "anthropic"
    if path.startswith("/openai/"):
        return "azure"
    return "openai"


def from_exception(exc: BaseException) -> MlxcliError:
    """Any exception → a neutral error; unknown ones become a 500 without internals."""
    if isinstance(exc, MlxcliError):
        return exc
    if isinstance(exc, falcon.HTTPError):
        status = int(str(exc.status).split()[0])
        if status == 404:
            return NotFound(exc.description or "Unknown route.", code="not_found")
        if status == 405:
            return MethodNotAllowed(exc.description or "Method not allowed for this route.", code="method_not_allowed")
        if status == 413:
            return PayloadTooLarge(exc.description or "Request body too large.")
        if 400 <= status < 500:
            err = InvalidRequest(exc.description or exc.title or "Bad request.")
            err.status = status
            return err
        return MlxcliError(exc.description or exc.title or "Server error.")
    return MlxcliError("The server had an error while processing your request.")


def handle(req: falcon.Request, resp: falcon.Response, exc: BaseException, _params: Any) -> None:
    """Falcon error handler for every route: the provider's shape, never a traceback."""
    err = from_exception(exc)
    if not isinstance(exc, (MlxcliError, falcon.HTTPError)):
        log.exception("unhandled error on %s %s", req.method, req.path, exc_info=exc)
    # Middleware that rewrites a path (Azure's routes) records whose API the request is.
    body_of, status_of = PROVIDERS[req.context.get("provider") or provider_for_path(req.path)]
    resp.status = status_of(err)
    resp.content_type = falcon.MEDIA_JSON
    resp.media = None
    resp.stream = None
    resp.data = orjson.dumps(body_of(err))
    retry_after = getattr(err, "retry_after", None)
    if retry_after:
        resp.set_header("Retry-After", str(retry_after))

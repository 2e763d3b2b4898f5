"""One error mapper per provider: neutral errors → each API's status and JSON shape.

Every error the server writes goes through ``render``: Falcon's error handler,
the middleware (auth, Host check, overload) and waitress's own protocol errors
(malformed HTTP, header and body limits), so a client always gets its API's shape.
"""

from __future__ import annotations

import http
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


def provider_of(req: falcon.Request) -> str:
    """The API a request speaks: ``req.context.provider`` (set by middleware, routes may refine it), else its path."""
    return req.context.get("provider") or provider_for_path(req.path)


REASONS = {499: "Client Closed Request", 529: "Overloaded"}


def status_line(status: int) -> str:
    try:
        return f"{status} {http.HTTPStatus(status).phrase}"
    except ValueError:
        return f"{status} {REASONS.get(status, 'Error')}"


def render(err: MlxcliError, provider: str) -> tuple[int, list[tuple[str, str]], bytes]:
    """(status, extra headers, JSON body) of ``err`` in ``provider``'s shape."""
    body_of, status_of = PROVIDERS.get(provider, PROVIDERS["openai"])
    headers = []
    retry_after = getattr(err, "retry_after", None)
    if retry_after:
        headers.append(("Retry-After", str(retry_after)))
    return status_of(err), headers, orjson.dumps(body_of(err))


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
        return from_status(status, exc.description or exc.title or "")
    return MlxcliError("The server had an error while processing your request.")


def from_status(status: int, message: str) -> MlxcliError:
    """A neutral error for a bare HTTP status (waitress's protocol errors, Falcon's HTTPError)."""
    if status == 413:
        return PayloadTooLarge(message or "Request body too large.")
    if 400 <= status < 500:
        err = InvalidRequest(message or "Bad request.")
        err.status = status
        return err
    return MlxcliError(message or "Server error.")


def handle(req: falcon.Request, resp: falcon.Response, exc: BaseException, _params: Any) -> None:
    """Falcon error handler for every route: the provider's shape, never a traceback."""
    err = from_exception(exc)
    if not isinstance(exc, (MlxcliError, falcon.HTTPError)):
        log.exception("unhandled error on %s %s", req.method, req.path, exc_info=exc)
    status, headers, body = render(err, provider_of(req))
    resp.status = status_line(status)
    resp.content_type = falcon.MEDIA_JSON
    resp.media = None
    resp.stream = None
    resp.data = body
    for name, value in headers:
        resp.set_header(name, value)

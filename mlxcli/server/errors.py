"""Every error the server writes, in the shape of the API that was called.

Falcon's error handler, the middleware (auth, Host check, overload) and waitress's own protocol
errors (malformed HTTP, header and body limits) all go through ``render``: the provider that
owns the path (providers/__init__.py) gives the status and the body, so a client always gets
its API's shape. Unknown exceptions become a 500 without internals.
"""

from __future__ import annotations

import http
import logging
from typing import Any

import falcon
import orjson

from mlxcli.core.errors import InvalidRequest, MethodNotAllowed, MlxcliError, PayloadTooLarge, RouteNotFound
from mlxcli.server.providers import provider_for_path
from mlxcli.server.providers.base import Provider

log = logging.getLogger("mlxcli.server")

REASONS = {499: "Client Closed Request", 529: "Overloaded"}


def status_line(status: int) -> str:
    try:
        return f"{status} {http.HTTPStatus(status).phrase}"
    except ValueError:
        return f"{status} {REASONS.get(status, 'Error')}"


def render(err: MlxcliError, provider: Provider) -> tuple[int, list[tuple[str, str]], bytes]:
    """(status, extra headers, JSON body) of ``err`` in ``provider``'s shape."""
    headers = []
    retry_after = getattr(err, "retry_after", None)
    if retry_after:
        headers.append(("Retry-After", str(retry_after)))
    return provider.error_status(err), headers, orjson.dumps(provider.error_body(err))


def render_for_path(err: MlxcliError, path: str) -> tuple[int, list[tuple[str, str]], bytes]:
    return render(err, provider_for_path(path or "/"))


def from_exception(exc: BaseException) -> MlxcliError:
    """Any exception → a neutral error; unknown ones become a 500 without internals."""
    if isinstance(exc, MlxcliError):
        return exc
    if isinstance(exc, falcon.HTTPError):
        status = int(str(exc.status).split()[0])
        if status == 404:
            return RouteNotFound(exc.description or "Unknown route.")
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


def handle(req: falcon.Request, resp: falcon.Response, exc: BaseException, _params: Any) -> MlxcliError:
    """Falcon error handler for every route: the provider's shape, never a traceback. Returns the
    neutral error written (for the metrics)."""
    err = from_exception(exc)
    if not isinstance(exc, (MlxcliError, falcon.HTTPError)):
        log.exception("unhandled error on %s %s", req.method, req.path, exc_info=exc)
    status, headers, body = render_for_path(err, req.context.get("path") or req.path)
    if isinstance(exc, falcon.HTTPMethodNotAllowed):
        headers.append(("Allow", exc.headers["Allow"]))  # what the route takes (RFC 9110)
    resp.status = status_line(status)
    resp.content_type = falcon.MEDIA_JSON
    resp.media = None
    resp.stream = None
    resp.data = body
    for name, value in headers:
        resp.set_header(name, value)
    return err

"""What the client raises: one ``ServerError`` for every way a server can fail us.

- ``ServerUnreachable``: nothing answered (connection refused, no such host, connect timeout);
- ``ServerError`` with ``http_status``: the server refused the request (its error body's message);
- ``ServerError`` without it: the answer broke off, or an error event arrived mid-stream;
- ``BadResponse``: the server answered something that is not the protocol (not JSON, cut short).
"""

from __future__ import annotations

import http
from typing import Any

import orjson

from mlxcli.core.errors import MlxcliError


class ServerError(MlxcliError):
    """The server refused the request, could not be reached, or broke off its answer."""

    def __init__(
        self,
        message: str,
        *,
        http_status: int | None = None,
        error_type: str | None = None,
        retry_after: float | None = None,
    ):
        super().__init__(message)
        self.http_status = http_status  # the server's HTTP status; None when it never answered with one
        self.error_type = error_type  # the API's error type or code (overloaded_error, server_error, ...)
        self.retry_after = retry_after  # seconds, from a Retry-After header

    @property
    def overloaded(self) -> bool:
        """A full queue (503/529, or an overloaded error event): worth retrying later."""
        return self.http_status in (429, 503, 529) or self.error_type in ("overloaded_error", "rate_limit_exceeded")


class ServerUnreachable(ServerError):
    def __init__(self, where: str, cause: str):
        super().__init__(f"cannot reach {where}: {cause}")
        self.cause = cause  # the connection error, e.g. "[Errno 111] Connection refused"


class BadResponse(ServerError):
    """An answer that is not what the protocol says (not JSON, a stream cut short)."""


def error_detail(body: Any) -> tuple[str | None, str | None]:
    """(message, type or code) of an error body in any shape we meet.

    OpenAI ``{"error": {"message", "type", "code"}}``, Anthropic ``{"type": "error", "error": {"type", "message"}}``,
    Azure ``{"error": {"code", "message"}}``, a bare ``{"error": "..."}``, FastAPI ``{"detail": ...}``,
    and the Responses API's ``error`` event ``{"type": "error", "code", "message"}``.
    """
    if not isinstance(body, dict):
        return None, None
    error = body.get("error", body.get("detail"))
    if isinstance(error, dict):
        message, kind = error.get("message"), error.get("type") or error.get("code")
    elif isinstance(error, str):
        message, kind = error, None
    else:
        message, kind = body.get("message"), body.get("code")
    return (
        message if isinstance(message, str) and message else None,
        kind if isinstance(kind, str) and kind else None,
    )


def error_event(payload: Any, fallback: str = "the server reported an error") -> ServerError:
    """An error that arrived inside a stream, after the 200."""
    message, kind = error_detail(payload)
    return ServerError(message or fallback, error_type=kind)


def refusal(status: int, content: bytes, headers: Any = None) -> ServerError:
    """A non-200 answer → ``the server answered 400: <its message>``."""
    try:
        message, kind = error_detail(orjson.loads(content))
    except orjson.JSONDecodeError:
        message, kind = None, None
    text = content.decode("utf-8", "replace")
    message = message or " ".join(text.split())[:300] or phrase(status)
    hint = " (pass --api-key)" if status == 401 else ""
    return ServerError(
        f"the server answered {status}: {message}{hint}",
        http_status=status,
        error_type=kind,
        retry_after=_seconds((headers or {}).get("retry-after")),
    )


def phrase(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return {529: "Overloaded"}.get(status, "")


def _seconds(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None  # an HTTP date: rare, and not worth parsing here

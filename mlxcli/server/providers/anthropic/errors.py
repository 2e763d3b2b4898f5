"""Anthropic's error shape: ``{"type": "error", "error": {"type", "message"}}``, overload as 529 (§3.5)."""

from __future__ import annotations

from typing import Any

from mlxcli.core.errors import ContextLengthExceeded, MlxcliError

TYPES = {
    "invalid_request": "invalid_request_error",
    "authentication": "authentication_error",
    "permission": "permission_error",
    "not_found": "not_found_error",
    "too_large": "request_too_large",
    "overloaded": "overloaded_error",
    "server_error": "api_error",
}


def error_body(err: MlxcliError) -> dict[str, Any]:
    message = err.message
    if isinstance(err, ContextLengthExceeded):
        message = f"prompt is too long: {err.prompt_tokens} tokens > {err.context_window} maximum"
    elif err.param and err.param not in message:
        message = f"{err.param}: {message}"  # Anthropic's shape has no `param`; its own messages lead with the path
    return {"type": "error", "error": {"type": TYPES.get(err.kind, "api_error"), "message": message}}


def error_status(err: MlxcliError) -> int:
    return 529 if err.kind == "overloaded" else err.status

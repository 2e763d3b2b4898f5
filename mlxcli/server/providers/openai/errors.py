"""OpenAI's error shape: ``{"error": {"message", "type", "param", "code"}}`` (wire-formats §1.5)."""

from __future__ import annotations

from typing import Any

from mlxcli.core.errors import MlxcliError

TYPES = {
    "invalid_request": "invalid_request_error",
    "authentication": "invalid_request_error",
    "permission": "permission_error",
    "not_found": "invalid_request_error",
    "too_large": "invalid_request_error",
    "overloaded": "server_error",
    "server_error": "server_error",
}


def error_body(err: MlxcliError) -> dict[str, Any]:
    return {"error": {"message": err.message, "type": TYPES.get(err.kind, "server_error"), "param": err.param, "code": err.code}}

"""One rule for the addresses users paste: every form names the server root; each API knows its path."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from mlxcli.core.errors import InvalidRequest

MODELS_PATH = "/v1/models"
PS_PATH = "/mlxcli/ps"  # mlxcli serve's own (server/resources.py)
# Endpoints people paste whole (from a curl line, an SDK's docs): cut back to the root as well.
ENDPOINTS = ("/v1/chat/completions", "/v1/responses", "/v1/messages", "/v1/models", "/v1", "/api/chat", "/api/generate")


def server_root(url: str) -> str:
    """``http://host:port[/prefix]`` from ``host:port``, ``http://host:port``, with or without ``/v1``
    (or a whole endpoint such as ``/v1/chat/completions``) and trailing slashes.

    A path before ``/v1`` is kept (``https://gateway.example/openai/v1`` → ``https://gateway.example/openai``);
    query strings and fragments are dropped.
    """
    text = url.strip()
    if text and "://" not in text:
        text = "http://" + text
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidRequest(f"{url!r} is not a server address (examples: 127.0.0.1:8000, http://127.0.0.1:8000/v1)")
    try:
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        raise InvalidRequest(f"{url!r} is not a server address: bad port") from None
    path = parts.path.rstrip("/")
    for endpoint in ENDPOINTS:
        if path.endswith(endpoint):
            path = path[: -len(endpoint)].rstrip("/")
            break
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))

"""One HTTP client for every server mlxcli talks to: `mlxcli chat --url`, `mlxcli bench --url`, `mlxcli ps`.

- ``urls``: what users paste (``host:port``, ``http://host:port/v1``, …) → the server root;
- ``streams``: SSE and NDJSON framing;
- ``openai_chat``, ``openai_responses``, ``anthropic``, ``ollama``: per API, a ChatRequest → a request body, and
  that API's stream → the neutral events of ``mlxcli.core.events`` (the mirror image of the
  server's encoders in ``mlxcli.server.providers``); registered by name in ``apis``;
- ``http``: the ``Client`` (list models, GET JSON, stream a request, close);
- ``errors``: every failure is a ``ServerError`` (``ServerUnreachable``, ``BadResponse``).
"""

from mlxcli.client.apis import APIS, NAMES
from mlxcli.client.errors import BadResponse, ServerError, ServerUnreachable
from mlxcli.client.http import Client, EventStream
from mlxcli.client.urls import MODELS_PATH, PS_PATH, server_root

__all__ = [
    "APIS", "NAMES", "BadResponse", "Client", "EventStream", "MODELS_PATH", "PS_PATH", "ServerError",
    "ServerUnreachable", "server_root",
]

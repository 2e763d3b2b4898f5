"""The Ollama API (the ``ollama`` libraries, LangChain's ChatOllama, Open WebUI, Continue, ...).

    POST /api/chat, /api/generate   chat and completion; NDJSON streams by default
    GET  /api/tags                  the served models
    POST /api/show                  one model: family, size, quantization, context, template, capabilities
    GET  /api/ps                    the models in memory
    GET  /api/version, GET|HEAD /   the version; "Ollama is running"
    POST /api/pull                  fetch a model (mlxcli pull's resolver), progress streamed
    DELETE /api/delete              remove an installed model (only with --allow-delete)
    POST /api/embed, /api/embeddings  embeddings (the embedding models served)

Errors are ``{"error": "..."}`` with the error's status; after a stream started, one such line.
Ollama serves on port 11434: ``mlxcli serve --port 11434`` for clients that assume it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mlxcli.core.errors import MlxcliError
from mlxcli.server.framing import NDJSON
from mlxcli.server.providers.base import Provider, Route
from mlxcli.server.providers.ollama import models, request
from mlxcli.server.providers.ollama.pull import Pull
from mlxcli.server.providers.ollama.embed import Embed
from mlxcli.server.providers.ollama.resources import Chat, Root, Version
from mlxcli.server import ui

if TYPE_CHECKING:
    from mlxcli.server.context import ServerContext


def error_body(err: MlxcliError) -> dict[str, Any]:
    return {"error": err.message}


def routes(ctx: "ServerContext") -> list[Route]:
    return [
        Route("/", Root(page=ui.PAGE if ctx.settings.ui else None)),
        Route("/api/chat", Chat(ctx, request.parse_chat, PROVIDER)),
        Route("/api/generate", Chat(ctx, request.parse_generate, PROVIDER)),
        Route("/api/tags", models.Tags(ctx)),
        Route("/api/show", models.Show(ctx)),
        Route("/api/ps", models.RunningModels(ctx)),
        Route("/api/version", Version()),
        Route("/api/pull", Pull(ctx)),
        Route("/api/delete", models.Delete(ctx)),
        Route("/api/embed", Embed(ctx, legacy=False)),
        Route("/api/embeddings", Embed(ctx, legacy=True)),
    ]


PROVIDER = Provider(
    name="ollama",
    prefixes=("/api/",),
    error_body=error_body,
    framing=NDJSON,
    routes=routes,
)

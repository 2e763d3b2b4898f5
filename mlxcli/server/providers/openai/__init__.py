"""The OpenAI API: Chat Completions, legacy Completions, Responses (stored, with previous_response_id; its
WebSocket refused so that Codex falls back to HTTP at once), Embeddings, Images (generations and edits), Audio
(transcriptions, translations) and the model list.

``api_routes`` mounts them under a prefix: ``/v1`` here, and Azure's own prefixes (azure.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mlxcli.server.framing import SSE
from mlxcli.server.generate import Generate
from mlxcli.server.providers.base import Provider, Route
from mlxcli.server.providers.openai import chat, completions, responses
from mlxcli.server.providers.openai.audio import Transcribe
from mlxcli.server.providers.openai.embeddings import Embed
from mlxcli.server.providers.openai.errors import error_body
from mlxcli.server.providers.openai.images import Images
from mlxcli.server.providers.openai.models import Models
from mlxcli.server.providers.openai.responses_route import Responses
from mlxcli.server.providers.openai.stored import StoredResponses

if TYPE_CHECKING:
    from mlxcli.server.context import ServerContext


def api_routes(ctx: "ServerContext", prefix: str, provider: Provider | None = None) -> list[Route]:
    """OpenAI's routes under ``prefix``, answering as ``provider`` (Azure's, under its own prefixes)."""
    stored = StoredResponses(ctx.store)
    models = Models(ctx.engine)
    images = Images(ctx, provider or PROVIDER)
    return [
        Route(f"{prefix}/chat/completions", chat_resource(ctx, provider)),
        Route(f"{prefix}/completions", Generate(ctx, completions.parse, provider or PROVIDER)),
        Route(f"{prefix}/responses", responses_resource(ctx, provider)),
        Route(f"{prefix}/responses/{{response_id}}", stored),
        Route(f"{prefix}/responses/{{response_id}}/input_items", stored, "input_items"),
        Route(f"{prefix}/embeddings", Embed(ctx, provider or PROVIDER)),
        Route(f"{prefix}/images/generations", images),
        Route(f"{prefix}/images/edits", images, "edit"),
        *audio_routes(ctx, prefix, provider),
        Route(f"{prefix}/models", models),
        Route(f"{prefix}/models/{{model_id:path}}", models, "one"),  # repo ids hold a "/"
    ]


def audio_routes(ctx: "ServerContext", prefix: str, provider: Provider | None = None) -> list[Route]:
    """Transcriptions and translations under ``prefix`` (Azure's deployments take them too)."""
    return [Route(f"{prefix}/audio/{path}", Transcribe(ctx, provider or PROVIDER, task))
            for path, task in (("transcriptions", "transcribe"), ("translations", "translate"))]


def chat_resource(ctx: "ServerContext", provider: Provider | None = None) -> Generate:
    return Generate(ctx, chat.parse, provider or PROVIDER)


def responses_resource(ctx: "ServerContext", provider: Provider | None = None) -> Responses:
    return Responses(ctx, lambda body: responses.parse(body, ctx.store), provider or PROVIDER)


PROVIDER = Provider(
    name="openai",
    prefixes=("/",),  # every path no other provider owns, /v1/... included
    error_body=error_body,
    framing=SSE,
    routes=lambda ctx: api_routes(ctx, "/v1"),
)

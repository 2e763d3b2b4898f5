"""create_app: routes, middleware and error handlers in one place."""

from __future__ import annotations

import falcon

from mlxcli.engine.engine import Engine
from mlxcli.server import errors
from mlxcli.server.middleware import AccessLog
from mlxcli.server.providers import anthropic, openai_chat, openai_responses
from mlxcli.server.providers.azure import AzureRoutes
from mlxcli.server.resources import CountTokens, Generate, Health, Models, RunningModels, ServerContext
from mlxcli.server.settings import ServerSettings
from mlxcli.store import ConversationStore


def create_app(engine: Engine, settings: ServerSettings | None = None, store: ConversationStore | None = None) -> falcon.App:
    """The app; without a ``store`` stored responses live in memory for the app's lifetime."""
    settings = settings or ServerSettings()
    store = store if store is not None else ConversationStore.memory()
    ctx = ServerContext(engine=engine, settings=settings, store=store)
    app = falcon.App(
        middleware=[
            AccessLog(),
            falcon.CORSMiddleware(allow_origins="*" if "*" in settings.cors_origins else settings.cors_origins),
            AzureRoutes(),  # maps /openai/... onto the /v1/... routes below
        ]
    )
    app.req_options.strip_url_path_trailing_slash = True
    app.add_error_handler(Exception, errors.handle)
    app.add_error_handler(falcon.HTTPError, errors.handle)

    app.add_route("/v1/chat/completions", Generate(ctx, openai_chat.Provider))
    app.add_route("/v1/messages", Generate(ctx, anthropic.Provider))
    app.add_route("/v1/messages/count_tokens", CountTokens(ctx, anthropic.Provider))
    app.add_route("/v1/responses", Generate(ctx, openai_responses.Provider(store)))
    stored = openai_responses.StoredResponses(store)
    app.add_route("/v1/responses/{response_id}", stored)
    app.add_route("/v1/responses/{response_id}/input_items", stored, suffix="input_items")
    models = Models(ctx)
    app.add_route("/v1/models", models)
    app.add_route("/v1/models/{model_id:path}", models, suffix="one")  # repo ids hold a "/"
    app.add_route("/health", Health(ctx))
    app.add_route("/api/ps", RunningModels(ctx))
    return app

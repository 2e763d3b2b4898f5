"""create_app: routes, middleware and error handlers in one place."""

from __future__ import annotations

import falcon

from mlxcli.engine.engine import MlxEngine
from mlxcli.server import errors
from mlxcli.server.middleware import AccessLog, Admission, ApiKeyAuth, Cors, HostCheck, RequestContext
from mlxcli.server.providers import anthropic, openai_chat, openai_responses
from mlxcli.server.providers.azure import AzureRoutes
from mlxcli.server.resources import CountTokens, Generate, Health, Models, RunningModels, ServerContext
from mlxcli.server.settings import ServerSettings
from mlxcli.server.shutdown import ShutdownHooks
from mlxcli.store import ConversationStore


def create_app(
    engine: Engine,
    settings: ServerSettings | None = None,
    store: ConversationStore | None = None,
    *,
    shutdown: ShutdownHooks | None = None,
) -> falcon.App:
    """The WSGI app. Without a ``store``, stored responses live in memory for the app's lifetime;
    ``shutdown`` collects what must run when the server stops (see shutdown.py)."""
    settings = settings or ServerSettings()
    store = store if store is not None else ConversationStore.memory()
    admission = Admission(settings.max_in_flight)
    ctx = ServerContext(
        engine=engine, settings=settings, admission=admission, store=store, shutdown=shutdown or ShutdownHooks()
    )
    app = falcon.App(
        middleware=[  # order matters: see middleware.py
            RequestContext(),
            AccessLog(),
            HostCheck(settings.host, settings.allowed_hosts),
            Cors(settings.cors_origins),
            ApiKeyAuth(settings.api_keys),
            admission,
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

"""create_app: routes, middleware and error handlers in one place."""

from __future__ import annotations

import falcon

from mlxcli.engine.engine import Engine
from mlxcli.server import errors
from mlxcli.server.middleware import AccessLog
from mlxcli.server.providers import openai_chat
from mlxcli.server.resources import Generate, Health, Models, RunningModels, ServerContext
from mlxcli.server.settings import ServerSettings


def create_app(engine: Engine, settings: ServerSettings | None = None) -> falcon.App:
    settings = settings or ServerSettings()
    ctx = ServerContext(engine=engine, settings=settings)
    app = falcon.App(
        middleware=[
            AccessLog(),
            falcon.CORSMiddleware(allow_origins="*" if "*" in settings.cors_origins else settings.cors_origins),
        ]
    )
    app.req_options.strip_url_path_trailing_slash = True
    app.add_error_handler(Exception, errors.handle)
    app.add_error_handler(falcon.HTTPError, errors.handle)

    app.add_route("/v1/chat/completions", Generate(ctx, openai_chat.Provider))
    models = Models(ctx)
    app.add_route("/v1/models", models)
    app.add_route("/v1/models/{model_id:path}", models, suffix="one")  # repo ids hold a "/"
    app.add_route("/health", Health(ctx))
    app.add_route("/api/ps", RunningModels(ctx))
    return app

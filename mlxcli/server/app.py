"""create_app: routes, middleware and error handlers in one place."""

from __future__ import annotations

import falcon

from mlxcli.engine.engine import Engine
from mlxcli.server import errors
from mlxcli.server.middleware import AccessLog, Admission, ApiKeyAuth, Cors, HostCheck, RequestContext
from mlxcli.server.providers import openai_chat
from mlxcli.server.resources import Generate, Health, Models, ServerContext
from mlxcli.server.settings import ServerSettings
from mlxcli.server.shutdown import ShutdownHooks


def create_app(
    engine: Engine, settings: ServerSettings | None = None, *, shutdown: ShutdownHooks | None = None
) -> falcon.App:
    """The WSGI app. ``shutdown`` collects what must run when the server stops (see shutdown.py)."""
    settings = settings or ServerSettings()
    admission = Admission(settings.max_in_flight)
    ctx = ServerContext(engine=engine, settings=settings, admission=admission, shutdown=shutdown or ShutdownHooks())
    app = falcon.App(
        middleware=[  # order matters: see middleware.py
            RequestContext(),
            AccessLog(),
            HostCheck(settings.host, settings.allowed_hosts),
            Cors(settings.cors_origins),
            ApiKeyAuth(settings.api_keys),
            admission,
        ]
    )
    app.req_options.strip_url_path_trailing_slash = True
    app.add_error_handler(Exception, errors.handle)
    app.add_error_handler(falcon.HTTPError, errors.handle)

    app.add_route("/v1/chat/completions", Generate(ctx, openai_chat.Provider))
    models = Models(ctx)
    app.add_route("/v1/models", models)
    app.add_route("/v1/models/{model_id}", models, suffix="one")
    app.add_route("/health", Health(ctx))
    return app

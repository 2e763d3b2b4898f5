"""create_app: the middleware, the error handler, mlxcli's own routes and every provider's routes."""

from __future__ import annotations

import falcon

from mlxcli.core.engine import Engine
from mlxcli.server import errors
from mlxcli.server.context import ServerContext
from mlxcli.server.middleware import AccessLog, Admission, ApiKeyAuth, Cors, HostCheck, RequestContext
from mlxcli.server.providers import PROVIDERS
from mlxcli.server.resources import Health, RunningModels
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
    admission = Admission(engine.capacity)  # every request the engine accepts may be streaming
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
            *[m for provider in PROVIDERS for m in provider.middleware(ctx)],
        ]
    )
    app.req_options.strip_url_path_trailing_slash = True
    app.add_error_handler(Exception, errors.handle)
    app.add_error_handler(falcon.HTTPError, errors.handle)

    app.add_route("/health", Health(ctx))
    app.add_route(RunningModels.PATH, RunningModels(ctx))
    for provider in PROVIDERS:
        for route in provider.routes(ctx):
            app.add_route(route.template, route.resource, **({"suffix": route.suffix} if route.suffix else {}))
    return app

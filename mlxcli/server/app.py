"""create_app: the middleware, the error handler, mlxcli's own routes (health, metrics, the web page)
and every provider's routes."""

from __future__ import annotations

from typing import Any

import falcon

from mlxcli.core.engine import Engine
from mlxcli.server import errors, ui
from mlxcli.server.context import ServerContext
from mlxcli.server.metrics import Metrics, MetricsResource
from mlxcli.server.middleware import OPEN_PATHS, AccessLog, Admission, ApiKeyAuth, Cors, HostCheck, RequestContext
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
    metrics = Metrics(engine)
    ctx = ServerContext(
        engine=engine, settings=settings, admission=admission, metrics=metrics, store=store,
        shutdown=shutdown or ShutdownHooks(),
    )  # fmt: skip
    host_check = HostCheck(settings.host, settings.allowed_hosts)
    open_paths = OPEN_PATHS | (ui.PATHS if settings.ui else set()) | (set() if settings.metrics_auth else {"/metrics"})
    app = falcon.App(
        middleware=[  # order matters: see middleware.py
            RequestContext(),
            AccessLog(),
            host_check,
            Cors(settings.cors_origins, trust_host=host_check.enabled or bool(settings.api_keys)),
            ApiKeyAuth(settings.api_keys, open_paths),
            admission,
            *[m for provider in PROVIDERS for m in provider.middleware(ctx)],
        ]
    )
    app.req_options.strip_url_path_trailing_slash = True

    def on_error(req: falcon.Request, resp: falcon.Response, exc: BaseException, params: Any) -> None:
        metrics.refused(errors.handle(req, resp, exc, params))

    app.add_error_handler(Exception, on_error)
    app.add_error_handler(falcon.HTTPError, on_error)

    app.add_route("/health", Health(ctx))
    app.add_route(RunningModels.PATH, RunningModels(ctx))
    app.add_route("/metrics", MetricsResource(metrics))
    routes = [route for provider in PROVIDERS for route in provider.routes(ctx)]
    for route in routes + (ui.routes() if settings.ui else []):
        app.add_route(route.template, route.resource, **({"suffix": route.suffix} if route.suffix else {}))
    return app

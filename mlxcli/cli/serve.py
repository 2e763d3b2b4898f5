"""`mlxcli serve`: the HTTP server."""

from __future__ import annotations

import logging
import signal
from pathlib import Path

import typer

from mlxcli import logs
from mlxcli.cli import app
from mlxcli.cli.common import FastPathOption, ModelOption, fail, start_engine
from mlxcli.cli.store_options import ConversationDirOption, StorePathOption, store_settings
from mlxcli.core.errors import MlxcliError
from mlxcli.engine.settings import EngineSettings

log = logging.getLogger("mlxcli.serve")


@app.command()
def serve(
    model: str = ModelOption,
    host: str = typer.Option("127.0.0.1", envvar="MLXCLI_HOST", help="Address to bind."),
    port: int = typer.Option(8000, envvar="MLXCLI_PORT", help="Port to bind."),
    threads: int = typer.Option(16, envvar="MLXCLI_THREADS", min=1, help="HTTP worker threads."),
    temperature: float = typer.Option(0.7, envvar="MLXCLI_TEMPERATURE", min=0, help="Default temperature."),
    top_p: float = typer.Option(0.95, envvar="MLXCLI_TOP_P", min=0, max=1, help="Default top_p."),
    max_tokens: int = typer.Option(4096, envvar="MLXCLI_MAX_TOKENS", min=1, help="Default max tokens (capped by the context window)."),
    max_queue: int = typer.Option(32, envvar="MLXCLI_MAX_QUEUE", min=1, help="Requests allowed to wait; beyond it: 503/529 at once."),
    context_length: int = typer.Option(None, envvar="MLXCLI_CONTEXT_LENGTH", min=16, help="Lower the model's context window."),
    cors_origins: str = typer.Option("*", envvar="MLXCLI_CORS_ORIGINS", help="Comma-separated allowed CORS origins."),
    max_body_bytes: int = typer.Option(4 * 1024 * 1024, envvar="MLXCLI_MAX_BODY_BYTES", min=1024, help="Request body limit (413 beyond it)."),
    fast_path: bool = FastPathOption,
    store_path: Path = StorePathOption,
    conversation_dir: Path = ConversationDirOption,
    conversation_ttl: str = typer.Option("1h", envvar="MLXCLI_CONVERSATION_TTL", help="Archive conversations idle this long (90s, 30m, 1h; 0 = never)."),
    store_max_items: int = typer.Option(None, envvar="MLXCLI_STORE_MAX_ITEMS", min=1, help="Most input+output items kept hot; beyond it the least recently used conversations are archived."),
    store_max_bytes: str = typer.Option(None, envvar="MLXCLI_STORE_MAX_BYTES", help="Most bytes kept hot (500MB, 2GiB); beyond it the least recently used conversations are archived."),
    store_chat: bool = typer.Option(False, "--store-chat/--no-store-chat", envvar="MLXCLI_STORE_CHAT", help="Also store Chat Completions requests that do not say store:true."),
    log_level: str = typer.Option("INFO", envvar="MLXCLI_LOG_LEVEL", help="Logging level."),
) -> None:
    """Serve a model over the OpenAI, Anthropic and Azure OpenAI APIs."""
    logs.setup(log_level)
    from mlxcli.store import ConversationStore

    try:  # before the (slow) model load: a store we cannot open fails at once
        store = ConversationStore(
            store_settings(store_path, conversation_dir, ttl=conversation_ttl, max_items=store_max_items, max_bytes=store_max_bytes)
        )
    except MlxcliError as exc:
        fail(exc.message)

    engine = start_engine(
        model,
        fast_path=fast_path,
        settings=EngineSettings(
            temperature=temperature,
            top_p=top_p,
            max_tokens=max_tokens,
            max_queue=max_queue,
            context_length=context_length,
        ),
    )
    from mlxcli.server.app import create_app
    from mlxcli.server.runner import HttpServer
    from mlxcli.server.settings import ServerSettings

    settings = ServerSettings(
        host=host,
        port=port,
        threads=threads,
        cors_origins=[o.strip() for o in cors_origins.split(",") if o.strip()],
        max_body_bytes=max_body_bytes,
        store_chat=store_chat,
    )
    server = HttpServer(create_app(engine, settings, store.start()), host=host, port=port, threads=threads)

    def shut_down(signum, _frame) -> None:
        log.info("received %s: finishing in-flight requests, then stopping", signal.Signals(signum).name)
        server.shutdown()

    signal.signal(signal.SIGINT, shut_down)
    signal.signal(signal.SIGTERM, shut_down)
    log.info("serving %s on http://%s:%d (OpenAI base URL http://%s:%d/v1)", engine.name, host, server.port, host, server.port)
    try:
        server.serve(grace=10, cancel_in_flight=lambda: engine.stop(grace=0))
    finally:
        engine.stop(grace=0)
        store.close()  # after the engine: no more answers to store
        log.info("stopped")

"""`mlxcli serve`: the HTTP server."""

from __future__ import annotations

import logging
import os
import signal
import sys
from pathlib import Path
from typing import List, Optional

import typer

from mlxcli import logs
from mlxcli.cli import app
from mlxcli.cli.common import FastPathOption, ModelOption, fail, start_engine
from mlxcli.engine.settings import EngineSettings
from mlxcli.server.settings import LOOPBACK_ORIGINS, ServerSettings

log = logging.getLogger("mlxcli.serve")


def _csv(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


def read_api_keys(keys: list[str], key_file: Path | None) -> list[str]:
    """Keys from ``--api-key`` and from ``--api-key-file`` (one per line, ``#`` comments)."""
    found = [k.strip() for k in keys if k.strip()]
    if key_file is not None:
        try:
            lines = key_file.read_text().splitlines()
        except OSError as exc:
            fail(f"cannot read the API key file {key_file}: {exc.strerror or exc}")
        from_file = [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
        if not from_file:
            fail(f"the API key file {key_file} holds no key")
        found += from_file
    return found


@app.command()
def serve(
    model: str = ModelOption,
    host: str = typer.Option("127.0.0.1", envvar="MLXCLI_HOST", help="Address to bind (0.0.0.0: every interface; see README, Security)."),
    port: int = typer.Option(8000, envvar="MLXCLI_PORT", help="Port to bind."),
    threads: Optional[int] = typer.Option(None, envvar="MLXCLI_THREADS", min=1, help="HTTP worker threads (default: max-queue + 9)."),
    temperature: float = typer.Option(0.7, envvar="MLXCLI_TEMPERATURE", min=0, help="Default temperature."),
    top_p: float = typer.Option(0.95, envvar="MLXCLI_TOP_P", min=0, max=1, help="Default top_p."),
    max_tokens: int = typer.Option(4096, envvar="MLXCLI_MAX_TOKENS", min=1, help="Default max tokens (capped by the context window)."),
    max_queue: int = typer.Option(32, envvar="MLXCLI_MAX_QUEUE", min=1, help="Requests allowed to wait; beyond it: 503/529 at once."),
    context_length: int = typer.Option(None, envvar="MLXCLI_CONTEXT_LENGTH", min=16, help="Lower the model's context window."),
    api_key: List[str] = typer.Option([], "--api-key", envvar="MLXCLI_API_KEY", help="Require this API key (repeatable; the env var takes several, space-separated)."),
    api_key_file: Optional[Path] = typer.Option(None, envvar="MLXCLI_API_KEY_FILE", help="Require one of the API keys in this file (one per line)."),
    cors_origins: str = typer.Option(",".join(LOOPBACK_ORIGINS), envvar="MLXCLI_CORS_ORIGINS", help="Comma-separated browser origins allowed to call the API ('*': any; ':*' any port)."),
    allowed_hosts: str = typer.Option("", envvar="MLXCLI_ALLOWED_HOSTS", help="Comma-separated Host names to answer besides localhost ('*': any)."),
    max_body_bytes: int = typer.Option(4 * 1024 * 1024, envvar="MLXCLI_MAX_BODY_BYTES", min=1024, help="Request body limit (413 beyond it)."),
    max_header_bytes: int = typer.Option(64 * 1024, envvar="MLXCLI_MAX_HEADER_BYTES", min=1024, help="Request header limit (431 beyond it)."),
    shutdown_timeout: float = typer.Option(10.0, envvar="MLXCLI_SHUTDOWN_TIMEOUT", min=0, help="Seconds in-flight requests get to finish on Ctrl-C/SIGTERM."),
    fast_path: bool = FastPathOption,
    log_level: str = typer.Option("INFO", envvar="MLXCLI_LOG_LEVEL", help="Logging level."),
) -> None:
    """Serve a model over the OpenAI, Anthropic and Azure OpenAI APIs."""
    logs.setup(log_level)
    settings = ServerSettings(
        host=host,
        port=port,
        max_in_flight=max_queue + 1,  # one generating, max_queue waiting
        threads=threads,
        cors_origins=_csv(cors_origins),
        allowed_hosts=_csv(allowed_hosts),
        api_keys=read_api_keys(api_key, api_key_file),
        max_body_bytes=max_body_bytes,
        max_header_bytes=max_header_bytes,
        shutdown_timeout=shutdown_timeout,
    )
    try:
        settings.check()
    except ValueError as exc:
        fail(str(exc))

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
    from mlxcli.server.middleware import is_loopback
    from mlxcli.server.runner import HttpServer
    from mlxcli.server.shutdown import ShutdownHooks

    hooks = ShutdownHooks()
    server = HttpServer.for_settings(create_app(engine, settings, shutdown=hooks), settings)

    signals_seen: list[str] = []

    def shut_down(signum, _frame) -> None:
        name = signal.Signals(signum).name
        signals_seen.append(name)
        if len(signals_seen) > 1:
            log.warning("received %s again: cancelling in-flight requests now", name)
            server.shutdown(force=True)
            return
        log.info("received %s: finishing in-flight requests (up to %.0fs), then stopping", name, shutdown_timeout)
        server.shutdown()

    signal.signal(signal.SIGINT, shut_down)
    signal.signal(signal.SIGTERM, shut_down)
    if not is_loopback(host) and not settings.api_keys:
        log.warning("listening on %s without an API key: anyone who can reach it can use this server (see --api-key)", host)
    log.info("serving %s on http://%s:%d (OpenAI base URL http://%s:%d/v1)", engine.name, host, server.port, host, server.port)
    try:
        server.serve(grace=shutdown_timeout, cancel_in_flight=lambda: engine.stop(grace=0), on_stopped=hooks.run)
    finally:
        engine.stop(grace=0)
        log.info("stopped")
    # Everything is flushed and closed. Leave now: MLX sometimes aborts while the interpreter tears
    # down its threads ("terminate called without an active exception", exit status 134).
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)

"""`mlxcli serve`: the HTTP server."""

from __future__ import annotations

import logging
import signal
from pathlib import Path

import typer

from mlxcli import logs
from mlxcli.cli import app
from mlxcli.cli.common import FastPathOption, fail, start_engine
from mlxcli.cli.store_options import ConversationDirOption, StorePathOption, store_settings
from mlxcli.core.errors import MlxcliError
from mlxcli.engine.settings import EngineSettings, ModelSpec

log = logging.getLogger("mlxcli.serve")

CONFIG_META = "mlxcli.config"
NOT_SERVER_SETTINGS = ("config", "model", "print_config")  # flags a config file's `server:` cannot set


def _read_config(ctx: typer.Context, _param: typer.CallbackParam, value: Path | None) -> Path | None:
    """Eager: the file's `server:` settings become the defaults of the other flags, so flags win."""
    if value is None:
        return None
    from mlxcli.config import ConfigError, load_config

    try:
        config = load_config(value)
    except ConfigError as exc:
        raise typer.BadParameter(str(exc)) from None
    known = sorted(p.name for p in ctx.command.params if p.name not in NOT_SERVER_SETTINGS)
    for key in config.server:
        if key not in known:
            raise typer.BadParameter(f"{value}: unknown server setting {key!r} (known: {', '.join(known)})")
    ctx.default_map = {
        **(ctx.default_map or {}),
        # A list (e.g. cors_origins) stands for the flag's comma-separated form.
        **{k: ",".join(map(str, v)) if isinstance(v, list) else v for k, v in config.server.items()},
    }
    ctx.meta[CONFIG_META] = config
    return value


@app.command()
def serve(
    ctx: typer.Context,
    model: list[str] = typer.Option(
        None, "--model", "-m", envvar="MLXCLI_MODEL", show_default=False,
        help="Model to serve (repeat for several; the first is the default): built-in alias (smollm2-135m), "
        "Hugging Face repo id, local MLX directory or .gguf file. Replaces the config file's models.",
    ),
    config: Path = typer.Option(
        None, "--config", envvar="MLXCLI_CONFIG", is_eager=True, callback=_read_config,
        help="YAML or TOML file: models (served names, aliases, defaults) and server settings. Flags override it.",
    ),
    host: str = typer.Option("127.0.0.1", envvar="MLXCLI_HOST", help="Address to bind."),
    port: int = typer.Option(8000, envvar="MLXCLI_PORT", help="Port to bind."),
    threads: int = typer.Option(16, envvar="MLXCLI_THREADS", min=1, help="HTTP worker threads."),
    temperature: float = typer.Option(0.7, envvar="MLXCLI_TEMPERATURE", min=0, help="Default temperature."),
    top_p: float = typer.Option(0.95, envvar="MLXCLI_TOP_P", min=0, max=1, help="Default top_p."),
    max_tokens: int = typer.Option(4096, envvar="MLXCLI_MAX_TOKENS", min=1, help="Default max tokens (capped by the context window)."),
    max_queue: int = typer.Option(32, envvar="MLXCLI_MAX_QUEUE", min=1, help="Requests allowed to wait; beyond it: 503/529 at once."),
    context_length: int = typer.Option(None, envvar="MLXCLI_CONTEXT_LENGTH", min=16, help="Lower every model's context window."),
    chat_template: Path = typer.Option(
        None, "--chat-template", envvar="MLXCLI_CHAT_TEMPLATE",
        help="Jinja chat template file replacing the tokenizer's (for models whose config names none).",
    ),
    max_loaded_models: int = typer.Option(
        1, envvar="MLXCLI_MAX_LOADED_MODELS", min=1,
        help="Models kept in memory at once; a request for another one evicts the least recently used.",
    ),
    idle_unload: float = typer.Option(
        None, envvar="MLXCLI_IDLE_UNLOAD", min=0, help="Unload a model after this many seconds unused (default: never)."
    ),
    strict_model_names: bool = typer.Option(
        False, "--strict-model-names", envvar="MLXCLI_STRICT_MODEL_NAMES",
        help="With a single model, answer 404 to names it is not served under (default: any name reaches it).",
    ),
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
    print_config: bool = typer.Option(
        False, "--print-config", help="Print the effective configuration (file + flags) as YAML and exit."
    ),
) -> None:
    """Serve models over the OpenAI, Anthropic and Azure OpenAI APIs."""
    from mlxcli.config import ServeConfig, dump_config

    file_config: ServeConfig | None = ctx.meta.get(CONFIG_META)
    specs = [ModelSpec(model=m) for m in model] if model else list(file_config.models if file_config else [])
    if print_config:
        server = {k: v for k, v in ctx.params.items() if k not in NOT_SERVER_SETTINGS and v is not None}
        server.update({k: str(v) for k, v in server.items() if isinstance(v, Path)})
        typer.echo(dump_config(ServeConfig(models=specs or [_default_spec()], server=server)), nl=False)
        return
    logs.setup(log_level)
    from mlxcli.store import ConversationStore

    try:  # before the (slow) model load: a store we cannot open fails at once
        store = ConversationStore(
            store_settings(store_path, conversation_dir, ttl=conversation_ttl, max_items=store_max_items, max_bytes=store_max_bytes)
        )
    except MlxcliError as exc:
        fail(exc.message)

    engine = start_engine(
        specs or None,
        fast_path=fast_path,
        settings=EngineSettings(
            temperature=temperature,
            top_p=top_p,
            max_tokens=max_tokens,
            max_queue=max_queue,
            context_length=context_length,
            chat_template=str(chat_template) if chat_template else None,
            max_loaded_models=max_loaded_models,
            idle_unload=idle_unload or None,
            strict_model_names=strict_model_names,
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
    names = ", ".join(m.name + (f" (aliases: {', '.join(m.aliases)})" if m.aliases else "") for m in engine.models())
    log.info("serving %s on http://%s:%d (OpenAI base URL http://%s:%d/v1)", names, host, server.port, host, server.port)
    try:
        server.serve(grace=10, cancel_in_flight=lambda: engine.stop(grace=0))
    finally:
        engine.stop(grace=0)
        store.close()  # after the engine: no more answers to store
        log.info("stopped")


def _default_spec() -> ModelSpec:
    from mlxcli.engine.models import DEFAULT_MODEL

    return ModelSpec(model=DEFAULT_MODEL)

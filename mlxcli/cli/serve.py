"""`mlxcli serve`: the HTTP server. Each flag's default is read from the settings it fills."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import List, Optional

import typer

from mlxcli import logs
from mlxcli.cli import app
from mlxcli.cli import distributed as cli_distributed
from mlxcli.cli.common import FastPathOption, exit_process, fail, start_engine
from mlxcli.cli.store_options import SIZE_HELP, ConversationDirOption, StorePathOption, size_option, store_settings
from mlxcli.core.errors import MlxcliError
from mlxcli.engine.settings import MAX_SPECULATIVE_DEPTH, POLICIES, SPECULATIVE, EngineSettings, ModelSpec
from mlxcli.server.images import FetchPolicy
from mlxcli.server.settings import ServerSettings
from mlxcli.store.settings import StoreSettings

CONFIG_META = "mlxcli.config"
REASONING_MODES = ("separate", "strip")
DISTRIBUTED_MODES = ("tensor", "pipeline")  # engine/group.py shards in these modes (importing it imports mlx)
KV_BITS = (2, 3, 4, 5, 6, 8)  # what mx.quantize supports
NOT_SERVER_SETTINGS = ("config", "model", "print_config", "launch")  # flags a config file's `server:` cannot set (the ranks --launch starts read the file too)
ENGINE, SERVER = EngineSettings(), ServerSettings()  # the defaults


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
    repeatable = {p.name for p in ctx.command.params if getattr(p, "multiple", False)}
    ctx.default_map = {
        **(ctx.default_map or {}),
        # A list stands for a repeatable flag's values (api_key) or a comma-separated one's (cors_origins).
        **{
            k: ",".join(map(str, v)) if isinstance(v, list) and k not in repeatable else v
            for k, v in config.server.items()
        },
    }
    ctx.meta[CONFIG_META] = config
    return value


def _choice(value: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise typer.BadParameter(f"{value!r} is not one of {', '.join(choices)}")
    return value


def _kv_bits(value: int | None) -> int | None:
    if value is not None and value not in KV_BITS:
        raise typer.BadParameter(f"{value} is not one of {', '.join(map(str, KV_BITS))}")
    return value


def _alias(value: str) -> tuple[str, str]:
    name, sep, model = value.partition("=")
    if not sep or not name.strip() or not model.strip():
        raise typer.BadParameter(f"{value!r} is not NAME=MODEL (example: 'claude-*=qwen3')")
    return name.strip(), model.strip()


def _csv(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


def _bytes(n: int) -> str:
    """A byte count as the flag's help shows it (2GiB)."""
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size and n % size == 0:
            return f"{n // size}{unit}"
    return str(n)


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
    host: str = typer.Option(SERVER.host, envvar="MLXCLI_HOST", help="Address to bind (0.0.0.0: every interface; see README, Security)."),
    port: int = typer.Option(SERVER.port, envvar="MLXCLI_PORT", help="Port to bind."),
    threads: Optional[int] = typer.Option(SERVER.threads, envvar="MLXCLI_THREADS", min=1, help="HTTP worker threads (default: max-batch + max-queue + 8)."),
    temperature: float = typer.Option(ENGINE.temperature, envvar="MLXCLI_TEMPERATURE", min=0, help="Default temperature."),
    top_p: float = typer.Option(ENGINE.top_p, envvar="MLXCLI_TOP_P", min=0, max=1, help="Default top_p."),
    max_tokens: int = typer.Option(ENGINE.max_tokens, envvar="MLXCLI_MAX_TOKENS", min=1, help="Default max tokens (capped by the context window)."),
    max_queue: int = typer.Option(ENGINE.max_queue, envvar="MLXCLI_MAX_QUEUE", min=1, help="Requests allowed to wait; beyond it: 503/529 at once."),
    max_batch: int = typer.Option(ENGINE.max_batch, envvar="MLXCLI_MAX_BATCH", min=1, help="Requests generating together (continuous batching); more wait in the queue."),
    prefill_step_size: int = typer.Option(ENGINE.prefill_step_size, envvar="MLXCLI_PREFILL_STEP_SIZE", min=16, help="Prompt tokens a step reads of one prompt at most, between decode steps of the running requests."),
    prefill_ratio: float = typer.Option(ENGINE.prefill_ratio, envvar="MLXCLI_PREFILL_RATIO", min=0.0, help="While requests are answering, each step reads prompts for this many times its decode step's measured time."),
    young_ratio: float = typer.Option(ENGINE.young_ratio, envvar="MLXCLI_YOUNG_RATIO", min=0.0, help="The same while an answer is young (fewer than --young-tokens out): short answers are not stretched by long prompts."),
    young_tokens: int = typer.Option(ENGINE.young_tokens, envvar="MLXCLI_YOUNG_TOKENS", min=0, help="Answer tokens during which an answer is young."),
    max_step_seconds: float = typer.Option(ENGINE.max_step_seconds, envvar="MLXCLI_MAX_STEP_SECONDS", min=0.01, help="The longest a step (a token for every answer, then prompt reading) should take: the bound on the wait between two tokens."),
    prompt_cache_bytes: str = typer.Option(_bytes(ENGINE.prompt_cache_bytes), envvar="MLXCLI_PROMPT_CACHE_BYTES", callback=size_option, help=f"Memory for the KV caches of earlier prompts, reused by requests that share their prefix (0: off); {SIZE_HELP}."),
    prompt_cache_entries: int = typer.Option(ENGINE.prompt_cache_entries, envvar="MLXCLI_PROMPT_CACHE_ENTRIES", min=0, help="Most prompts kept in the prompt cache."),
    prompt_cache_dir: str = typer.Option(
        None, envvar="MLXCLI_PROMPT_CACHE_DIR", show_default=False,
        help="Where the prompt cache keeps what memory evicts, and everything at shutdown, so a restart or model swap starts warm "
        "(default: DATA_DIR/prompt-cache; 'none': off). Several servers may share it.",
    ),
    prompt_cache_disk_bytes: str = typer.Option(_bytes(ENGINE.prompt_cache_disk_bytes), envvar="MLXCLI_PROMPT_CACHE_DISK_BYTES", callback=size_option, help=f"Most disk the prompt cache's directory holds; the least recently used files go first; {SIZE_HELP}."),
    vision_cache_bytes: str = typer.Option(_bytes(ENGINE.vision_cache_bytes), envvar="MLXCLI_VISION_CACHE_BYTES", callback=size_option, help=f"Memory for a vision model's encoder output, kept per image so the same image is not encoded twice (0: off); {SIZE_HELP}."),
    kv_bits: int = typer.Option(ENGINE.kv_bits, envvar="MLXCLI_KV_BITS", callback=_kv_bits, help="Quantize the KV cache to 2, 3, 4, 5, 6 or 8 bits: less memory for long contexts, slightly different output; requests then run one at a time."),
    speculative: Optional[str] = typer.Option(
        ENGINE.speculative, "--speculative", envvar="MLXCLI_SPECULATIVE", callback=lambda v: v and _choice(v, SPECULATIVE),
        help="Speculative decoding for models whose config says nothing: 'ngram' (prompt lookup: each request proposes "
        "tokens from its own prompt and answer, several tokens per step where an answer repeats its input: edits, "
        "patches, echoed JSON); 'off'. Greedy answers are unchanged, sampled ones keep their distribution; batching stays on.",
    ),
    draft_model: Optional[str] = typer.Option(
        ENGINE.draft_model, "--draft-model", envvar="MLXCLI_DRAFT_MODEL",
        help="A smaller model with the same tokenizer that proposes tokens (speculative decoding) for models whose "
        "config names none: alias, Hugging Face repo id or directory. With --speculative ngram it drafts where the lookup finds nothing.",
    ),
    speculative_depth: int = typer.Option(
        ENGINE.speculative_depth, envvar="MLXCLI_SPECULATIVE_DEPTH", min=1, max=MAX_SPECULATIVE_DEPTH,
        help="Proposed tokens a request verifies per step at most; below it each request's depth follows its acceptance and the measured step cost, down to none.",
    ),
    context_length: int = typer.Option(ENGINE.context_length, envvar="MLXCLI_CONTEXT_LENGTH", min=16, help="Lower every model's context window."),
    context_overflow: str = typer.Option(
        ENGINE.context_overflow, envvar="MLXCLI_CONTEXT_OVERFLOW", callback=lambda v: _choice(v, POLICIES),
        help="A conversation that outgrows the window: 'error' (the API's context-length error), 'truncate' (drop the oldest "
        "messages), 'summarize' (the model summarizes the older messages into a note). For models whose config sets none.",
    ),
    context_keep_turns: int = typer.Option(ENGINE.context_keep_turns, envvar="MLXCLI_CONTEXT_KEEP_TURNS", min=1, help="With --context-overflow summarize: the last messages kept as they are (tool results count with their calls)."),
    chat_template: Path = typer.Option(
        ENGINE.chat_template, "--chat-template", envvar="MLXCLI_CHAT_TEMPLATE",
        help="Jinja chat template file replacing the tokenizer's (for models whose config names none).",
    ),
    max_loaded_models: int = typer.Option(
        ENGINE.max_loaded_models, envvar="MLXCLI_MAX_LOADED_MODELS", min=1,
        help="Models kept in memory at once; a request for another one evicts the least recently used.",
    ),
    idle_unload: float = typer.Option(
        ENGINE.idle_unload, envvar="MLXCLI_IDLE_UNLOAD", min=0, help="Unload a model after this many seconds unused (default: never)."
    ),
    model_alias: List[str] = typer.Option(
        [], "--model-alias", envvar="MLXCLI_MODEL_ALIAS", callback=lambda v: [a for a in v or [] if _alias(a)],
        help="NAME=MODEL: requests for NAME go to the served MODEL; NAME may hold wildcards (claude-*, gpt-4*). Repeatable.",
    ),
    strict_model_names: bool = typer.Option(
        ENGINE.strict_model_names, "--strict-model-names", envvar="MLXCLI_STRICT_MODEL_NAMES",
        help="With a single model, answer 404 to names it is not served under (default: any name reaches it).",
    ),
    tool_call_parser: str = typer.Option(
        ENGINE.tool_call_parser, "--tool-call-parser", envvar="MLXCLI_TOOL_CALL_PARSER",
        help="Tool-call format of models whose config names none, instead of detecting it from the chat template: "
        "an mlx-lm parser (json_tools, qwen3_coder, glm47, mistral, pythonic, ...), 'harmony' (gpt-oss) or 'none' (no tool calling).",
    ),
    reasoning_parser: str = typer.Option(
        ENGINE.reasoning_parser, "--reasoning-parser", envvar="MLXCLI_REASONING_PARSER",
        help="Reasoning markers of models whose config names none, instead of detecting them: "
        "think, longcat, gemma4, kimi_k3, 'harmony' (gpt-oss's channels) or 'none' (reasoning left in the answer).",
    ),
    reasoning: str = typer.Option(
        ENGINE.reasoning, "--reasoning", envvar="MLXCLI_REASONING", callback=lambda v: _choice(v, REASONING_MODES),
        help="Reasoning (<think>...</think>, gpt-oss's analysis channel): 'separate' returns it apart from the answer; 'strip' drops it.",
    ),
    api_key: List[str] = typer.Option([], "--api-key", envvar="MLXCLI_API_KEY", help="Require this API key (repeatable; the env var takes several, space-separated)."),
    api_key_file: Optional[Path] = typer.Option(None, envvar="MLXCLI_API_KEY_FILE", help="Require one of the API keys in this file (one per line)."),
    cors_origins: str = typer.Option(",".join(SERVER.cors_origins), envvar="MLXCLI_CORS_ORIGINS", help="Comma-separated browser origins allowed to call the API ('*': any; ':*' any port)."),
    allowed_hosts: str = typer.Option(",".join(SERVER.allowed_hosts), envvar="MLXCLI_ALLOWED_HOSTS", help="Comma-separated Host names to answer besides localhost ('*': any)."),
    max_body_bytes: int = typer.Option(SERVER.max_body_bytes, envvar="MLXCLI_MAX_BODY_BYTES", min=1024, help="Request body limit (413 beyond it)."),
    max_upload_bytes: int = typer.Option(SERVER.max_upload_bytes, envvar="MLXCLI_MAX_UPLOAD_BYTES", min=1024, help="Upload (multipart: audio files) limit (413 beyond it)."),
    max_audio_seconds: float = typer.Option(SERVER.max_audio_seconds, envvar="MLXCLI_MAX_AUDIO_SECONDS", min=1, help="Longest audio one transcription decodes (400 beyond it)."),
    max_header_bytes: int = typer.Option(SERVER.max_header_bytes, envvar="MLXCLI_MAX_HEADER_BYTES", min=1024, help="Request header limit (431 beyond it)."),
    shutdown_timeout: float = typer.Option(SERVER.shutdown_timeout, envvar="MLXCLI_SHUTDOWN_TIMEOUT", min=0, help="Seconds in-flight requests get to finish on Ctrl-C/SIGTERM."),
    distributed: Optional[str] = typer.Option(
        None, "--distributed", envvar="MLXCLI_DISTRIBUTED", callback=lambda v: v and _choice(v, DISTRIBUTED_MODES),
        help="Under mlx.launch: shard the model over the ranks, 'tensor' (each layer split) or 'pipeline' (layers split); "
        "rank 0 serves HTTP, the others follow it.",
    ),
    launch: Optional[int] = typer.Option(
        None, "--launch", min=2, help="Start this many local ranks with mlx.launch (ring backend over loopback) and "
        "serve the model sharded over them (--distributed tensor unless given).",
    ),
    fast_path: bool = FastPathOption,
    store_path: Path = StorePathOption,
    conversation_dir: Path = ConversationDirOption,
    conversation_ttl: str = typer.Option(f"{StoreSettings.ttl_seconds / 3600:g}h", envvar="MLXCLI_CONVERSATION_TTL", help="Archive conversations idle this long (90s, 30m, 1h; 0 = never)."),
    store_max_items: int = typer.Option(StoreSettings.max_items, envvar="MLXCLI_STORE_MAX_ITEMS", min=1, help="Most input+output items kept hot; beyond it the least recently used conversations are archived."),
    store_max_bytes: str = typer.Option(None, envvar="MLXCLI_STORE_MAX_BYTES", callback=size_option, help=f"Most bytes kept hot; beyond it the least recently used conversations are archived; {SIZE_HELP}."),
    store_chat: bool = typer.Option(SERVER.store_chat, "--store-chat/--no-store-chat", envvar="MLXCLI_STORE_CHAT", help="Also store Chat Completions requests that do not say store:true."),
    allow_delete: bool = typer.Option(SERVER.allow_delete, "--allow-delete", envvar="MLXCLI_ALLOW_DELETE", help="Let clients delete installed models that are not being served (Ollama's DELETE /api/delete)."),
    ui: bool = typer.Option(SERVER.ui, "--ui/--no-ui", envvar="MLXCLI_UI", help="Serve the web chat page at /ui."),
    metrics_auth: bool = typer.Option(
        SERVER.metrics_auth, "--metrics-auth/--no-metrics-auth", envvar="MLXCLI_METRICS_AUTH",
        help="Require the API key (when one is set) on /metrics too; --no-metrics-auth lets Prometheus scrape without it.",
    ),
    allow_image_urls: bool = typer.Option(
        SERVER.image_fetch.allow, "--allow-image-urls/--no-allow-image-urls", envvar="MLXCLI_ALLOW_IMAGE_URLS",
        help="Fetch http(s) image URLs in requests (public addresses only, 20 MiB, 10 s, no redirects to other hosts).",
    ),
    log_level: str = typer.Option("INFO", envvar="MLXCLI_LOG_LEVEL", help="Logging level."),
    print_config: bool = typer.Option(
        False, "--print-config", help="Print the effective configuration (file + flags) as YAML and exit."
    ),
) -> None:
    """Serve models over the OpenAI, Anthropic, Azure OpenAI and Ollama APIs."""
    from mlxcli.config import ServeConfig, dump_config

    file_config: ServeConfig | None = ctx.meta.get(CONFIG_META)
    specs = [ModelSpec(model=m) for m in model] if model else list(file_config.models if file_config else [])
    if print_config:
        server = {k: v for k, v in ctx.params.items() if k not in NOT_SERVER_SETTINGS and v is not None}
        server.update({k: str(v) for k, v in server.items() if isinstance(v, Path)})
        typer.echo(dump_config(ServeConfig(models=specs or [_default_spec()], server=server)), nl=False)
        return
    if launch:
        cli_distributed.launch(launch, distributed, sys.argv[1:])
    logs.setup(log_level)
    settings = ServerSettings(
        host=host, port=port, threads=threads, cors_origins=_csv(cors_origins), allowed_hosts=_csv(allowed_hosts),
        api_keys=read_api_keys(api_key, api_key_file), max_body_bytes=max_body_bytes, max_header_bytes=max_header_bytes,
        max_upload_bytes=max_upload_bytes, max_audio_seconds=max_audio_seconds, shutdown_timeout=shutdown_timeout, store_chat=store_chat, allow_delete=allow_delete, ui=ui,
        metrics_auth=metrics_auth, image_fetch=FetchPolicy(allow=allow_image_urls),
    )
    engine_settings = EngineSettings(
        temperature=temperature, top_p=top_p, max_tokens=max_tokens, max_queue=max_queue, max_batch=max_batch,
        prefill_step_size=prefill_step_size, prefill_ratio=prefill_ratio, young_ratio=young_ratio, young_tokens=young_tokens,
        max_step_seconds=max_step_seconds, prompt_cache_bytes=int(prompt_cache_bytes), prompt_cache_entries=prompt_cache_entries,
        prompt_cache_dir=None if distributed else _cache_dir(prompt_cache_dir), prompt_cache_disk_bytes=int(prompt_cache_disk_bytes),
        vision_cache_bytes=int(vision_cache_bytes),
        kv_bits=kv_bits, context_length=context_length, chat_template=str(chat_template) if chat_template else None,
        max_loaded_models=max_loaded_models, idle_unload=idle_unload or None, strict_model_names=strict_model_names,
        model_aliases=[_alias(a) for a in model_alias],
        tool_call_parser=tool_call_parser or None, reasoning_parser=reasoning_parser or None, reasoning=reasoning,
        context_overflow=context_overflow, context_keep_turns=context_keep_turns, distributed=distributed,
        speculative=speculative, draft_model=draft_model, speculative_depth=speculative_depth,
    )
    try:
        settings.check(engine_settings.capacity)
    except ValueError as exc:
        fail(str(exc))
    if distributed and cli_distributed.rank(distributed, fast_path) > 0:
        cli_distributed.follow(specs or None, fast_path=fast_path, settings=engine_settings)  # no HTTP, no store
    from mlxcli.store import ConversationStore

    try:  # before the (slow) model load: a store we cannot open fails at once
        store = ConversationStore(
            store_settings(store_path, conversation_dir, ttl=conversation_ttl, max_items=store_max_items, max_bytes=store_max_bytes)
        )
    except MlxcliError as exc:
        fail(exc.message)
    engine = start_engine(specs or None, fast_path=fast_path, settings=engine_settings)
    from mlxcli.server.run import run_server

    if distributed:
        cli_distributed.watch(engine)
    run_server(engine, settings, store)
    exit_process(cli_distributed.exit_code(engine))


def _cache_dir(value: str | None) -> str | None:
    """--prompt-cache-dir: a directory, 'none' (no disk tier), or unset (the data directory's)."""
    if value is None:
        from mlxcli.paths import data_home

        return str(data_home() / "prompt-cache")
    return None if value.strip().lower() == "none" else str(Path(value).expanduser())


def _default_spec() -> ModelSpec:
    from mlxcli.models import DEFAULT_MODEL

    return ModelSpec(model=DEFAULT_MODEL)

"""`mlxcli chat`: chat in the terminal, or answer one question for a script (see mlxcli/chat/)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import List, Optional

import typer

from mlxcli.cli import app
from mlxcli.cli.common import FastPathOption, ModelOption, exit_process, fail, json_schema_file, start_engine
from mlxcli.cli.store_options import ConversationDirOption, StorePathOption, store_settings
from mlxcli.core.errors import MlxcliError
from mlxcli.core.request import SAMPLING_BOUNDS, ChatRequest, Sampling

HISTORY_FILE = "chat_history"


def _api(value: str) -> str:
    from mlxcli.client import NAMES

    if value not in NAMES:
        raise typer.BadParameter(f"{value!r} is not one of {', '.join(NAMES)}")
    return value


def bounds(name: str) -> dict:
    """Typer's ``min``/``max`` for a sampling flag: the bounds every API accepts."""
    _, lo, hi = SAMPLING_BOUNDS[name]
    return {"min": lo} if hi == float("inf") else {"min": lo, "max": hi}


@app.command()
def chat(
    model: Optional[str] = ModelOption,
    url: Optional[str] = typer.Option(
        None, "--url", envvar="MLXCLI_URL",
        help="Chat with a running server (mlxcli serve, llama.cpp, LM Studio, …) instead of loading the model "
        "here: its address, with or without /v1 (127.0.0.1:8000, http://127.0.0.1:8000/v1).",
    ),
    api: str = typer.Option(
        "chat", "--api", envvar="MLXCLI_API", callback=_api,
        help="With --url: the API to speak: chat (OpenAI Chat Completions), responses (OpenAI Responses), anthropic (Anthropic Messages) or ollama (Ollama's /api/chat).",
    ),
    api_key: Optional[str] = typer.Option(
        None, "--api-key", envvar="MLXCLI_API_KEY",
        help="With --url: the API key the server wants (a bearer token; x-api-key for --api anthropic).",
    ),
    system: Optional[str] = typer.Option(None, "--system", "-s", help="System prompt."),
    prompt: Optional[str] = typer.Option(
        None, "--prompt", "-p", help="Answer this and exit (with text piped on stdin: the prompt, a blank line, then that text)."
    ),
    as_json: bool = typer.Option(False, "--json", help="With -p or piped input: print the result as one JSON object."),
    stats: bool = typer.Option(False, "--stats", help="With -p or piped input: print tokens, speed and time to first token on stderr."),
    show_reasoning: bool = typer.Option(
        True, "--show-reasoning/--hide-reasoning", help="Show the model's reasoning (dimmed) before its answer."
    ),
    temperature: Optional[float] = typer.Option(None, **bounds("temperature"), help="Sampling temperature (default: the model's or server's)."),
    top_p: Optional[float] = typer.Option(None, **bounds("top_p"), help="Nucleus sampling threshold."),
    top_k: Optional[int] = typer.Option(None, **bounds("top_k"), help="Sample from the k most likely tokens (0: off)."),
    min_p: Optional[float] = typer.Option(None, **bounds("min_p"), help="Drop tokens less likely than min_p × the most likely one."),
    max_tokens: Optional[int] = typer.Option(None, **bounds("max_tokens"), help="Most tokens in one answer."),
    seed: Optional[int] = typer.Option(None, min=0, help="Random seed, for repeatable answers."),
    repetition_penalty: Optional[float] = typer.Option(None, **bounds("repetition_penalty"), help="Penalize repeated tokens (1: off)."),
    stop: List[str] = typer.Option([], "--stop", help="Stop the answer at this text (repeatable)."),
    json_schema: Optional[Path] = typer.Option(None, "--json-schema", help="Answer with JSON that matches the JSON Schema in this file."),
    speech_model: Optional[str] = typer.Option(
        None, "--speech-model", envvar="MLXCLI_SPEECH_MODEL",
        help="The speech model /audio transcribes with (default whisper-base in-process, pulled on first use; "
        "with --url: the server's first).",
    ),
    image: List[Path] = typer.Option([], "--image", help="Send this image (PNG, JPEG, WebP, GIF) with the question, to a vision model (repeatable)."),
    image_model: Optional[str] = typer.Option(None, "--image-model", envvar="MLXCLI_IMAGE_MODEL", help="An image-generation model (mflux: `mlxcli install imagegen`) served beside the chat model, for /image-gen; loaded on first use."),
    store: bool = typer.Option(True, "--store/--no-store", help="Keep the conversation in the conversation store (mlxcli convo)."),
    store_path: Path = StorePathOption,
    conversation_dir: Path = ConversationDirOption,
    fast_path: bool = FastPathOption,
) -> None:
    """Chat with a model in the terminal, or answer one question (-p, or text on stdin) for a script."""
    from mlxcli.chat import oneshot

    interactive = prompt is None and sys.stdin.isatty()
    if interactive and (as_json or stats):
        fail("--json and --stats go with -p or piped input", oneshot.EXIT_USAGE)
    sampling = Sampling(
        temperature=temperature, top_p=top_p, top_k=top_k, min_p=min_p, max_tokens=max_tokens, seed=seed,
        repetition_penalty=repetition_penalty, stop=list(stop),
    )
    if url is None and api != "chat":
        fail("--api goes with --url", oneshot.EXIT_USAGE)
    if url is not None:
        _check_api(api, sampling)
        if image_model is not None:
            fail("--image-model goes without --url (a server serves its own image models)", oneshot.EXIT_USAGE)
    response_format = json_schema_file(json_schema) if json_schema is not None else None
    images = _images(image)
    try:
        question = None
        if not interactive:
            question = oneshot.question(prompt, None if sys.stdin.isatty() else sys.stdin.read())
            if not question:
                fail("nothing to ask: give -p TEXT or pipe text on stdin", oneshot.EXIT_USAGE)
        # Fail fast and cheaply first: the server (when there is one), the store, then the (slow) model load.
        backend = _http_backend(url, api, model, api_key, speech_model) if url is not None else None
        conversations = _open_store(store_path, conversation_dir) if store else None
        if backend is None:
            from mlxcli.chat.backends import EngineBackend
            from mlxcli.cli.transcribe import DEFAULT_SPEECH_MODEL

            speech = speech_model or DEFAULT_SPEECH_MODEL
            backend = EngineBackend(_start_engine(model, fast_path, image_model), lambda: _speech_engine(speech))
    except KeyboardInterrupt:
        fail("interrupted", oneshot.EXIT_INTERRUPTED)

    from mlxcli.chat.session import ChatSession

    session = ChatSession(backend, conversations, system=system, sampling=sampling, response_format=response_format, images=images)
    code = 0
    try:
        if interactive:
            _repl(session, show_reasoning)
        else:
            code = oneshot.run(session, question, as_json=as_json, stats=stats, show_reasoning=show_reasoning)
    finally:
        backend.close()
        if conversations is not None:
            conversations.close()
    if url is None:
        exit_process(code)  # the engine ran here: skip the teardown MLX may abort in
    raise typer.Exit(code)


def _images(paths: List[Path]) -> list:
    """The --image files, read and checked before anything slow starts."""
    from mlxcli.core.errors import MlxcliError
    from mlxcli.server.images import read_file

    try:
        return [read_file(path.expanduser()) for path in paths]
    except MlxcliError as exc:
        fail(exc.message, 2)


def _check_api(api: str, sampling: Sampling) -> None:
    """Refuse at once the sampling flags the chosen API has no field for."""
    from mlxcli.client import APIS

    missing = APIS[api].unsupported(ChatRequest(messages=[], sampling=sampling))
    if missing:
        flags = ", ".join("--" + name.replace("_", "-") for name in missing)
        fail(f"{flags} cannot be sent over the {APIS[api].TITLE} API (--api {api}); use --api chat", 2)


def _http_backend(url: str, api: str, model: str | None, api_key: str | None, speech_model: str | None = None):
    from mlxcli.chat.http import HttpBackend

    key = api_key.split()[0] if api_key and api_key.split() else None  # MLXCLI_API_KEY may list several
    try:
        return HttpBackend(url, api=api, model=model, api_key=key, speech_model=speech_model)
    except MlxcliError as exc:
        fail(exc.message)


def _start_engine(model: str | None, fast_path: bool, image_model: str | None = None):
    """The engine, with a spinner on a terminal while the model is fetched (first use) and loaded."""
    from rich.console import Console

    from mlxcli.chat.render import quiet_terminal
    from mlxcli.engine.settings import ModelSpec
    from mlxcli.models import DEFAULT_MODEL

    if image_model is not None:
        model = [ModelSpec(model=model or DEFAULT_MODEL), ModelSpec(model=image_model)]  # type: ignore[assignment]

    err = Console(stderr=True)
    if not err.is_terminal:
        return start_engine(model, fast_path=fast_path)
    name = (model if isinstance(model, str) else None) or "the default model"
    restore = quiet_terminal(err.file)  # what is typed meanwhile waits, unechoed, for the first prompt
    try:
        with err.status(f"loading {name}…") as status:

            def progress(stage: str, done: int, total: int | None) -> None:
                status.update(f"{stage} {name}" + (f" {100 * done // total}%" if total else "") + "…")

            return start_engine(model, fast_path=fast_path, progress=progress)
    finally:
        restore()


def _speech_engine(name: str):
    """An engine of its own for /audio's speech model (pulled now, if need be); raises MlxcliError."""
    from mlxcli.engine.engine import MlxEngine
    from mlxcli.engine.kinds import prepare
    from mlxcli.engine.settings import EngineSettings, ModelSpec

    settings = EngineSettings()
    return MlxEngine([prepare(ModelSpec(model=name), settings)], settings).start()


def _open_store(store_path: Path | None, conversation_dir: Path | None):
    from mlxcli.store import ConversationStore

    try:
        return ConversationStore(store_settings(store_path, conversation_dir))
    except MlxcliError as exc:
        fail(exc.message)


def _repl(session, show_reasoning: bool) -> None:
    from rich.console import Console

    from mlxcli.chat.commands import ALIASES, COMMANDS
    from mlxcli.chat.editor import LineEditor
    from mlxcli.chat.repl import Repl
    from mlxcli.paths import data_home

    editor = LineEditor(data_home() / HISTORY_FILE, [*COMMANDS, *ALIASES])
    Repl(session, Console(), editor, show_reasoning=show_reasoning).run()

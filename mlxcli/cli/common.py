"""Pieces every command shares: options, the engine start-up, error exits."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn, Sequence

import typer

from mlxcli.engine import platform

if TYPE_CHECKING:
    from mlxcli.core.request import Grammar
    from mlxcli.engine.settings import ModelSpec

ModelOption = typer.Option(
    None, "--model", "-m", envvar="MLXCLI_MODEL",
    help="Model: built-in alias (smollm2-135m), Hugging Face repo id, local MLX directory or .gguf file.",
)
FastPathOption = typer.Option(
    True, "--fast-path/--no-fast-path", envvar="MLXCLI_FAST_PATH",
    help="Linux CPU: load the system OpenBLAS and run quantized models as float32.",
)


def json_schema_file(path: Path) -> "Grammar":
    """The JSON Schema in ``path`` (``--json-schema``) as a response format; a usage error if unreadable."""
    import json

    from mlxcli.core.request import Grammar

    try:
        schema = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise typer.BadParameter(f"cannot read a JSON Schema from {path}: {exc}", param_hint="--json-schema") from None
    if not isinstance(schema, dict):
        raise typer.BadParameter(f"{path} holds no JSON object", param_hint="--json-schema")
    return Grammar("json", param="--json-schema", schema=schema)


def fail(message: str, code: int = 1) -> NoReturn:
    """A clear one-line error on stderr and a non-zero exit, never a traceback."""
    print(f"error: {message}", file=sys.stderr)
    raise typer.Exit(code)


def exit_process(code: int = 0) -> NoReturn:
    """Leave now, skipping the interpreter's teardown: MLX sometimes aborts while the interpreter
    tears down its threads ("terminate called without an active exception", exit status 134).

    For commands that ran an engine in this process, once it is stopped and everything is closed.
    Never call it under a test runner that invokes commands in its own process (CliRunner).
    """
    import logging
    import os

    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # closed, or a broken pipe: nothing more can be written anyway
            pass
    os._exit(code)


def start_engine(model: "str | None | Sequence[ModelSpec]", *, fast_path: bool, settings=None, progress=None):
    """Resolve (fetching if needed) one model name or several specs; returns a started Engine.

    The first model is the default and is loaded now; the others load on first use.
    """
    platform.configure(fast_path)  # before anything imports mlx
    from mlxcli.core.errors import MlxcliError
    from mlxcli.engine.engine import MlxEngine
    from mlxcli.engine.kinds import prepare
    from mlxcli.engine.settings import EngineSettings, ModelSpec
    from mlxcli.models import DEFAULT_MODEL

    settings = settings or EngineSettings()
    specs = [ModelSpec(model=model or DEFAULT_MODEL)] if model is None or isinstance(model, str) else list(model)
    try:
        return MlxEngine([prepare(spec, settings, progress) for spec in specs], settings).start()
    except MlxcliError as exc:
        fail(exc.message)

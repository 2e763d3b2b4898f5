"""Pieces every command shares: options, the engine start-up, error exits."""

from __future__ import annotations

import sys
from typing import NoReturn

import typer

from mlxcli.engine import platform

ModelOption = typer.Option(
    None, "--model", "-m", envvar="MLXCLI_MODEL",
    help="Model: built-in alias (smollm2-135m), Hugging Face repo id, local MLX directory or .gguf file.",
)
FastPathOption = typer.Option(
    True, "--fast-path/--no-fast-path", envvar="MLXCLI_FAST_PATH",
    help="Linux CPU: load the system OpenBLAS and run quantized models as float32.",
)


def fail(message: str, code: int = 1) -> NoReturn:
    """A clear one-line error on stderr and a non-zero exit, never a traceback."""
    print(f"error: {message}", file=sys.stderr)
    raise typer.Exit(code)


def start_engine(model: str | None, *, fast_path: bool, settings=None, progress=None):
    """Resolve (fetching if needed) and load a model; returns a started Engine."""
    platform.configure(fast_path)  # before anything imports mlx
    from mlxcli.core.errors import MlxcliError
    from mlxcli.engine.engine import Engine
    from mlxcli.engine.models import resolve_model

    try:
        resolved = resolve_model(model, progress=progress)
        return Engine.from_path(resolved.name, resolved.path, settings).start()
    except MlxcliError as exc:
        fail(exc.message)

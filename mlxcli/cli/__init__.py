"""The `mlxcli` command tree. Each command lives in its own module."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="mlxcli",
    help="Serve and chat with local MLX language models.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)


def _version(value: bool) -> None:
    if value:
        from mlxcli import __version__

        typer.echo(f"mlxcli {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Show the version and exit."),
) -> None:
    """Serve and chat with local MLX language models."""


def main() -> None:
    app()


# Command modules register themselves on `app` when imported.
from mlxcli.cli import serve  # noqa: E402,F401
from mlxcli.cli import pull  # noqa: E402,F401
from mlxcli.cli import install  # noqa: E402,F401
from mlxcli.cli import bench  # noqa: E402,F401
from mlxcli.cli import models  # noqa: E402,F401
from mlxcli.cli import ps  # noqa: E402,F401
from mlxcli.cli import convo  # noqa: E402,F401
from mlxcli.cli import chat  # noqa: E402,F401
from mlxcli.cli import launch  # noqa: E402,F401
from mlxcli.cli import transcribe  # noqa: E402,F401

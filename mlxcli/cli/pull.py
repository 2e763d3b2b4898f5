"""``mlxcli pull [NAME]``: download / convert a model so that later commands start at once."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.text import Text

from mlxcli.cli import app
from mlxcli.cli.common import fail

# Stages reported by mlxcli.models (and its GGUF converter): label, and whether the counts are bytes.
_STAGES = {
    "download": ("download", True),
    "files": ("fetch files", False),
    "verify": ("verify sha256", True),
    "hash": ("hash", True),
    "extract": ("extract", True),
    "unpack": ("unpack", True),
    "read": ("read header", False),
    "convert": ("convert tensors", False),
    "write": ("write", False),
    "check": ("check it loads", False),
}


class _RichProgress:
    """Turns ``(stage, done, total)`` callbacks into one rich task per stage."""

    def __init__(self, progress: Progress):
        self.progress = progress
        self.tasks: dict[str, TaskID] = {}

    def __call__(self, stage: str, done: int, total: int | None) -> None:
        task = self.tasks.get(stage)
        if task is None:
            label, counts_bytes = _STAGES.get(stage, (stage, False))
            task = self.tasks[stage] = self.progress.add_task(label, total=total, bytes=counts_bytes)
        self.progress.update(task, completed=done, total=total)


class _AmountColumn(ProgressColumn):
    """Bytes and speed for byte stages, ``n/m`` for counted ones."""

    def __init__(self) -> None:
        super().__init__()
        self.size, self.speed, self.count = DownloadColumn(), TransferSpeedColumn(), MofNCompleteColumn()

    def render(self, task: Task) -> Text:
        if task.fields.get("bytes"):
            return Text.assemble(self.size.render(task), "  ", self.speed.render(task))
        return self.count.render(task)


@app.command()
def pull(
    name: Annotated[
        str | None,
        typer.Argument(help="Alias (smollm2-135m), Hugging Face repo id (owner/name), .gguf file or model directory."),
    ] = None,
    home: Annotated[
        Path | None,
        typer.Option("--home", envvar="MLXCLI_HOME", help="mlxcli data directory (models live in HOME/models)."),
    ] = None,
) -> None:
    """Download and convert a model (default: smollm2-135m); print its directory."""
    from mlxcli.core.errors import MlxcliError
    from mlxcli.models import pull as pull_model

    err = Console(stderr=True)
    progress = Progress(
        TextColumn("{task.description:<16}"),
        BarColumn(),
        _AmountColumn(),
        TimeRemainingColumn(),
        console=err,
        disable=not err.is_terminal,
    )
    try:
        with progress:
            resolved = pull_model(name, home=home, progress=_RichProgress(progress))
    except MlxcliError as e:
        fail(_one_line(e.message))
    except KeyboardInterrupt:
        fail("interrupted", 130)
    except Exception as e:  # a bug or an unexpected library failure: still no traceback for users
        fail(f"{type(e).__name__}: {_one_line(str(e))}")
    err.print(f"[green]ready:[/] {resolved.name} ({resolved.source})", highlight=False, soft_wrap=True)
    sys.stdout.write(f"{resolved.path}\n")


def _one_line(text: str) -> str:
    return " ".join(text.split()) or "unknown error"

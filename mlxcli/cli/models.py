"""``mlxcli models list`` / ``mlxcli models rm NAME``: the models on this machine."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.filesize import decimal
from rich.table import Table

from mlxcli.cli import app
from mlxcli.cli.common import fail

models_app = typer.Typer(help="Local models: list them, remove them.", no_args_is_help=True)
app.add_typer(models_app, name="models")

HomeOption = Annotated[
    Path | None,
    typer.Option("--home", envvar="MLXCLI_HOME", help="mlxcli data directory (models live in HOME/models)."),
]


@models_app.command("list")
def list_models(
    home: HomeOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per model, for scripts.")] = False,
) -> None:
    """Models installed by `mlxcli pull` and MLX models in the Hugging Face cache, with size and source."""
    from mlxcli.models import list_local_models
    from mlxcli.paths import models_dir

    found = list_local_models(home)
    if as_json:
        for m in found:
            typer.echo(json.dumps({"name": m.name, "source": m.source, "size_bytes": m.size, "path": str(m.path)}))
        return
    if not found:
        Console(stderr=True).print(f"no models in {models_dir(home)} or the Hugging Face cache; fetch one with `mlxcli pull`")
        return
    table = Table(box=None, pad_edge=False)
    for column in ("NAME", "SOURCE", "SIZE", "PATH"):
        table.add_column(column, no_wrap=column != "PATH", justify="right" if column == "SIZE" else "left")
    for m in found:
        table.add_row(m.name, m.source, decimal(m.size), str(m.path))
    Console(soft_wrap=True).print(table, highlight=False)


@models_app.command("rm")
def remove(
    name: Annotated[str, typer.Argument(help="An installed model's name, as `mlxcli models list` shows it.")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    home: HomeOption = None,
) -> None:
    """Delete a model from mlxcli's models directory (never anything outside it)."""
    from mlxcli.core.errors import MlxcliError
    from mlxcli.models import list_local_models, remove_local_model, validate_model_name
    from mlxcli.paths import models_dir

    models = models_dir(home)
    found = next((m for m in list_local_models(home) if m.name == name), None)
    if found is None:
        try:
            validate_model_name(name, allow_paths=False)
        except MlxcliError:
            fail(f"refusing to remove {name!r}: only models installed in {models} can be removed "
                 "(see `mlxcli models list`)")
        fail(f"model {name!r} is not installed in {models} (see `mlxcli models list`)")
    if found.source == "hf":
        fail(f"{name} lives in the Hugging Face cache, not in {models}; delete it with the Hugging Face CLI "
             "(`hf cache delete`)")
    if not yes and not typer.confirm(f"Remove {name} ({decimal(found.size)}, {found.path})?", default=False):
        fail("nothing removed")
    try:
        remove_local_model(name, home)
    except MlxcliError as exc:
        fail(exc.message)
    Console(stderr=True).print(f"removed {name} ({decimal(found.size)})", highlight=False)

"""``mlxcli ps``: what a running `mlxcli serve` has in memory (its ``GET /mlxcli/ps``)."""

from __future__ import annotations

import json
import time
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.filesize import decimal
from rich.table import Table

from mlxcli.cli import app
from mlxcli.cli.common import fail


@app.command()
def ps(
    url: Annotated[
        str, typer.Option("--url", envvar="MLXCLI_URL", help="The server's address, with or without /v1.")
    ] = "http://127.0.0.1:8000",
    api_key: Annotated[
        str | None, typer.Option("--api-key", envvar="MLXCLI_API_KEY", help="Sent as a bearer token, if the server wants one.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the server's answer as JSON.")] = False,
) -> None:
    """Show the models a running server has loaded (or is loading), and its queue."""
    state = _get(url, api_key)
    if as_json:
        typer.echo(json.dumps(state, indent=2))
        return
    console = Console(soft_wrap=True)
    models = state.get("models") or []
    if models:
        table = Table(box=None, pad_edge=False)
        for column in ("NAME", "KIND", "STATE", "SIZE", "CONTEXT", "ACTIVE", "LAST USED", "UNLOADS"):
            table.add_column(column, no_wrap=True)
        now = time.time()
        for m in models:
            table.add_row(
                m["name"],
                m.get("kind") or "-",
                m["state"],
                decimal(m["size_bytes"]) if m.get("size_bytes") is not None else "-",
                str(m["context_window"]),
                str(m["active_requests"]),
                _ago(now - m["last_used"]) if m.get("last_used") else "-",
                _ago(m["unloads_at"] - now, future=True) if m.get("unloads_at") else "-",
            )
        console.print(table, highlight=False)
    else:
        console.print("no model loaded", highlight=False)
    console.print(f"queue: {state.get('queue_depth', 0)} waiting, {state.get('active_requests', 0)} running", highlight=False)
    cache = state.get("prompt_cache") or {}
    if cache:
        console.print(f"prompt cache: {cache.get('entries', 0)} entries ({decimal(cache.get('bytes', 0))}) in memory", highlight=False)
    disk = cache.get("disk")
    if disk:
        console.print(
            f"  on disk: {disk['entries']} entries ({decimal(disk['bytes'])} of {decimal(disk['max_bytes'])}) in {disk['dir']}; "
            f"{disk['hits']} hits, {disk['writes']} writes",
            highlight=False,
        )
    if ranks := state.get("distributed"):  # a model sharded over mx.distributed
        memory = ", ".join(f"rank {r['rank']} {decimal(r['memory_bytes'])}" for r in ranks["ranks"])
        lost = "; a rank was lost" if ranks.get("lost") else ""
        console.print(f"{ranks['mode']} parallel over {ranks['world_size']} ranks ({ranks['backend']}): {memory}{lost}", highlight=False)


def _get(url: str, api_key: str | None) -> dict[str, Any]:
    from mlxcli.client import PS_PATH, BadResponse, Client, ServerError, ServerUnreachable, server_root
    from mlxcli.client.errors import phrase
    from mlxcli.core.errors import MlxcliError

    try:
        where = server_root(url) + PS_PATH
        with Client(url, api_key=api_key, timeout=10) as client:
            state = client.get_json(PS_PATH)
    except ServerUnreachable as exc:
        fail(f"cannot reach an mlxcli server at {where} ({exc.cause}); is `mlxcli serve` running?")
    except BadResponse:
        fail(f"{where} did not answer JSON: is this an mlxcli server?")
    except ServerError as exc:
        if exc.http_status == 404:
            fail(f"{where} was not found: is this an mlxcli server?")
        if exc.http_status is not None:
            fail(f"{where} answered {exc.http_status} {phrase(exc.http_status)}".rstrip())
        fail(exc.message)
    except MlxcliError as exc:  # not a server address
        fail(exc.message, 2)
    if not isinstance(state, dict):
        fail(f"{where} did not answer a JSON object: is this an mlxcli server?")
    return state


def _ago(seconds: float, *, future: bool = False) -> str:
    seconds = max(0, int(seconds))
    if seconds < 60:
        amount = f"{seconds}s"
    elif seconds < 3600:
        amount = f"{seconds // 60}m"
    else:
        amount = f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"in {amount}" if future else f"{amount} ago"

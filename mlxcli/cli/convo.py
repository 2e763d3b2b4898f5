"""`mlxcli convo`: list and export stored conversations, from the hot store and the archives alike."""

from __future__ import annotations

import os
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from mlxcli.cli import app
from mlxcli.cli.common import fail
from mlxcli.cli.store_options import ConversationDirOption, StorePathOption, store_settings

convo = typer.Typer(
    name="convo",
    help="List and export stored conversations (Responses API, stored chat completions, chat sessions).",
    no_args_is_help=True,
)
app.add_typer(convo, name="convo")


class Format(str, Enum):
    json = "json"
    jsonl = "jsonl"
    markdown = "markdown"


def _open(store_path: Path | None, conversation_dir: Path | None):
    from mlxcli.store import ConversationStore, StoreFailure

    try:  # read-only: safe while a server writes to the same store
        return ConversationStore(store_settings(store_path, conversation_dir), readonly=True)
    except StoreFailure as exc:
        fail(exc.message)


@convo.command("list")
def list_(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON (one object per conversation).")] = False,
    store_path: Path = StorePathOption,
    conversation_dir: Path = ConversationDirOption,
) -> None:
    """List conversations, most recently used first."""
    import orjson

    from mlxcli.store.export import timestamp

    with _open(store_path, conversation_dir) as store:
        summaries = store.conversations()
    if as_json:
        for s in summaries:
            sys.stdout.write(orjson.dumps(s.__dict__).decode() + "\n")
        return
    console = Console()
    if not summaries:
        console.print("no stored conversations", style="dim")
        return
    table = Table(box=None, pad_edge=False)
    for column in ("ID", "LAST USED", "TURNS", "MODEL", "WHERE", "FIRST MESSAGE"):
        table.add_column(column, no_wrap=column != "FIRST MESSAGE", overflow="ellipsis")
    for s in summaries:
        table.add_row(
            s.id, timestamp(s.updated_at), str(s.turns), ", ".join(s.models), "archived" if s.archived else "hot", s.title
        )
    console.print(table)


@convo.command("export")
def export(
    id: Annotated[Optional[str], typer.Argument(help="A conversation id (conv_…) or the id of one of its responses.")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Export every conversation.")] = False,
    fmt: Annotated[Format, typer.Option("--format", "-f", help="json (an object; an array with --all), jsonl (one conversation per line) or markdown.")] = Format.json,
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Write to this file instead of stdout.")] = None,
    store_path: Path = StorePathOption,
    conversation_dir: Path = ConversationDirOption,
) -> None:
    """Export one conversation (by id) or all of them."""
    from mlxcli.store.export import render

    if (id is None) == (not all_):
        fail("give a conversation id or --all (not both)", 2)
    with _open(store_path, conversation_dir) as store:
        if all_:
            conversations = store.all_conversations()
        else:
            found = store.conversation(id)
            if found is None:
                fail(f"no conversation or response with id {id!r}")
            conversations = [found]
    text = render(conversations, fmt.value, single=not all_)
    if output is None:
        sys.stdout.write(text)
        return
    temp = output.with_name(f".{output.name}.tmp-{os.getpid()}")
    try:
        temp.write_text(text, encoding="utf-8")
        os.replace(temp, output)
    except OSError as exc:
        temp.unlink(missing_ok=True)
        fail(f"cannot write {output}: {exc.strerror or exc}")
    Console(stderr=True).print(f"wrote {len(conversations)} conversation(s) to {output}", highlight=False)

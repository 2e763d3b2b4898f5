"""The REPL's slash commands: one table, one function each."""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from rich.markdown import Markdown
from rich.table import Table
from rich.text import Text

from mlxcli.chat.render import REASONING_STYLE, footer

if TYPE_CHECKING:
    from mlxcli.chat.repl import Repl

EXPORT_FORMATS = {".md": "markdown", ".markdown": "markdown", ".json": "json"}

INPUT_HELP = """\
Enter sends. A new line: end the line with a backslash, press Alt-Enter (or Esc, Enter),
or open a block with three double quotes and close it with three more; pasted text keeps its lines.
Up and Down recall earlier input (kept across sessions), Tab completes commands.
Ctrl-C stops an answer (the part that arrived stays in the conversation) or clears the line;
Ctrl-D on an empty line, or /exit, leaves. Start a message with // to send text beginning with /."""


@dataclass
class Command:
    name: str
    args: str
    help: str
    run: Callable[["Repl", str], None]


def _help(repl: "Repl", _arg: str) -> None:
    table = Table(box=None, show_header=False, pad_edge=False)
    table.add_column(style="bold", no_wrap=True)
    table.add_column()
    for c in COMMANDS.values():
        table.add_row(f"{c.name} {c.args}".rstrip(), c.help)
    repl.console.print(table)
    repl.console.print()
    repl.console.print(INPUT_HELP, style="dim", highlight=False)


def _clear(repl: "Repl", _arg: str) -> None:
    repl.session.clear()
    repl.console.print("new conversation", style="dim")


def _system(repl: "Repl", arg: str) -> None:
    session = repl.session
    if not arg:
        repl.console.print(f"system prompt: {session.system}" if session.system else "no system prompt", style="dim", highlight=False)
        return
    session.system = None if arg == "-" else arg
    repl.console.print(
        "system prompt removed" if session.system is None else "system prompt set (it applies from the next answer on)",
        style="dim",
    )


def _retry(repl: "Repl", _arg: str) -> None:
    if not repl.session.exchanges:
        repl.error("nothing to retry yet")
        return
    repl.answer(repl.session.retry)


def _history(repl: "Repl", _arg: str) -> None:
    session, console = repl.session, repl.console
    if session.system:
        console.print(Text.assemble(("system: ", "bold"), session.system))
    if not session.exchanges:
        console.print("nothing asked yet in this conversation", style="dim")
        return
    for number, e in enumerate(session.exchanges, 1):
        console.print(Text.assemble((f"[{number}] you: ", "bold"), e.question.content or ""))
        if e.completion.reasoning:
            console.print(Text(e.completion.reasoning.strip(), style=REASONING_STYLE))
        console.print(Markdown(e.completion.text) if e.completion.text else Text("(no answer)", style="dim"))
        console.print(footer(e), style="dim", highlight=False)
        console.print()


def _stats(repl: "Repl", _arg: str) -> None:
    session, console = repl.session, repl.console
    totals = session.totals()
    speeds = [e.tokens_per_second for e in session.exchanges if e.tokens_per_second is not None]
    rows = [
        ("model", f"{session.backend.model} ({session.backend.where})"),
        ("conversation", session.conversation_id or ("not stored (--no-store)" if session.store is None else "none yet")),
        ("exchanges", str(len(session.exchanges))),
        ("tokens", f"{totals.prompt_tokens} prompt + {totals.completion_tokens} completion"),
    ]
    if speeds:
        rows.append(("speed", f"{sum(speeds) / len(speeds):.1f} tok/s on average"))
    if session.exchanges:
        rows.append(("last answer", footer(session.exchanges[-1])))
    table = Table(box=None, show_header=False, pad_edge=False)
    table.add_column(style="bold", no_wrap=True)
    table.add_column()
    for name, value in rows:
        table.add_row(name, value)
    console.print(table, highlight=False)


def _export(repl: "Repl", arg: str) -> None:
    from mlxcli.store.export import render

    if not arg:
        repl.error("usage: /export FILE.md or /export FILE.json")
        return
    path = Path(arg).expanduser()
    fmt = EXPORT_FORMATS.get(path.suffix.lower())
    if fmt is None:
        repl.error(f"cannot tell the format of {arg!r}: name a .md or .json file")
        return
    if not repl.session.exchanges:
        repl.error("nothing to export yet")
        return
    temp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        temp.write_text(render([repl.session.conversation()], fmt, single=True), encoding="utf-8")
        os.replace(temp, path)
    except OSError as exc:
        temp.unlink(missing_ok=True)
        repl.error(f"cannot write {path}: {exc.strerror or exc}")
        return
    repl.console.print(f"wrote {len(repl.session.exchanges)} exchange(s) to {path}", style="dim", highlight=False)


def _image(repl: "Repl", arg: str) -> None:
    from mlxcli.core.errors import MlxcliError
    from mlxcli.server.images import read_file

    if not arg.strip():
        repl.console.print(f"{len(repl.session.images)} image(s) attached to the next message" if repl.session.images else "usage: /image PATH")
        return
    try:
        image = read_file(Path(arg.strip()).expanduser())
    except MlxcliError as exc:
        repl.console.print(Text(f"error: {exc.message}", style="red"))
        return
    repl.session.images.append(image)
    repl.console.print(f"attached {arg.strip()} ({image.width}x{image.height}): sent with your next message")


def _image_gen(repl: "Repl", arg: str) -> None:
    from mlxcli.core.errors import MlxcliError
    from mlxcli.files import write_durably

    first, _, rest = arg.partition(" ")
    size = re.fullmatch(r"(\d+)x(\d+)", first)
    prompt = rest.strip() if size else arg
    if not prompt:
        repl.error("usage: /image-gen [WIDTHxHEIGHT] PROMPT (the image is saved as a PNG in the current directory)")
        return
    try:
        with repl.console.status("generating the image…"):
            png = repl.session.backend.image(prompt, (int(size[1]), int(size[2])) if size else None)
    except MlxcliError as exc:
        repl.error(exc.message)
        return
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = next(p for n in range(1, 10_000) if not (p := Path(f"image-{stamp}{f'-{n}' if n > 1 else ''}.png")).exists())
    try:
        write_durably(path, png, path.with_name(f".{path.name}.tmp-{os.getpid()}"))
    except OSError as exc:
        repl.error(f"cannot write {path}: {exc.strerror or exc}")
        return
    repl.console.print(f"saved {path} ({len(png) // 1024 + 1} KiB)", highlight=False)


def _audio(repl: "Repl", arg: str) -> None:
    """Transcribe an audio file, show the words, and send them as the next message."""
    from mlxcli.core.errors import MlxcliError

    if not arg.strip():
        repl.console.print("usage: /audio PATH")
        return
    path = Path(arg.strip()).expanduser()
    try:
        with repl.console.status("transcribing..."):
            text = repl.session.backend.transcribe(path)
    except MlxcliError as exc:
        repl.error(exc.message)
        return
    if not text:
        repl.error(f"no speech heard in {path}")
        return
    repl.console.print(Text(f"you said: {text}", style="dim"))
    repl.answer(lambda on_event: repl.session.ask(text, on_event))


def _exit(repl: "Repl", _arg: str) -> None:
    repl.done = True


COMMANDS = {
    c.name: c
    for c in (
        Command("/help", "", "this help", _help),
        Command("/clear", "", "start a new conversation (the system prompt stays)", _clear),
        Command("/system", "[TEXT]", "set the system prompt (- removes it; alone: show it)", _system),
        Command("/retry", "", "ask the last question again; the new answer replaces the old one", _retry),
        Command("/history", "", "show this conversation", _history),
        Command("/stats", "", "model, conversation id, tokens and speed", _stats),
        Command("/image", "PATH", "attach an image (PNG, JPEG, WebP, GIF) to the next message", _image),
        Command("/image-gen", "[WxH] PROMPT", "generate an image with the image model served; saved as a PNG here", _image_gen),
        Command("/audio", "PATH", "transcribe an audio file and send its words as your message", _audio),
        Command("/export", "FILE", "write this conversation to FILE: Markdown (.md) or JSON (.json)", _export),
        Command("/exit", "", "leave (also /quit, Ctrl-D)", _exit),
    )
}
ALIASES = {"/quit": "/exit", "/bye": "/exit", "/?": "/help"}

"""Reading what the user types: line editing, input history kept across sessions, multi-line input.

prompt_toolkit gives Emacs-style editing, a history file and a multi-line buffer.
Enter sends, except that it starts a new line:
- after a trailing backslash (the backslash is removed),
- inside a block opened with three double quotes and not yet closed (the quotes are removed when sent).
Alt-Enter (or Esc then Enter) always starts a new line; pasted text keeps its newlines.
Ctrl-C clears the line (KeyboardInterrupt), Ctrl-D on an empty line ends (EOFError).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Iterable

from prompt_toolkit import PromptSession
from prompt_toolkit.completion import Completer, Completion
from prompt_toolkit.document import Document
from prompt_toolkit.formatted_text import FormattedText
from prompt_toolkit.history import FileHistory, History, InMemoryHistory
from prompt_toolkit.key_binding import KeyBindings

log = logging.getLogger("mlxcli.chat")

QUOTES = '"""'
PROMPT = FormattedText([("bold", ">>> ")])
PLACEHOLDER = FormattedText([("fg:ansibrightblack", "Send a message (/help for commands)")])


def unfinished(text: str) -> bool:
    """Whether Enter should start a new line rather than send ``text``."""
    if text.endswith("\\"):
        return True
    body = text.strip()
    return body.startswith(QUOTES) and (len(body) < 2 * len(QUOTES) or not body.endswith(QUOTES))


def unwrap(text: str) -> str:
    """The message a finished input stands for: a quoted block without its quotes."""
    body = text.strip()
    if body.startswith(QUOTES) and body.endswith(QUOTES) and len(body) >= 2 * len(QUOTES):
        return body[len(QUOTES) : -len(QUOTES)].strip("\n")
    return text


def _bindings() -> KeyBindings:
    kb = KeyBindings()

    @kb.add("enter")
    def _enter(event) -> None:
        buffer = event.current_buffer
        text = buffer.text
        if buffer.cursor_position < len(text):  # editing inside: Enter sends the whole message
            buffer.cursor_position = len(text)
        if text.endswith("\\"):
            buffer.delete_before_cursor(1)
            buffer.insert_text("\n")
        elif unfinished(text):
            buffer.insert_text("\n")
        else:
            buffer.validate_and_handle()

    @kb.add("escape", "enter")
    def _newline(event) -> None:
        event.current_buffer.insert_text("\n")

    return kb


class _SlashCommands(Completer):
    def __init__(self, names: Iterable[str]):
        self.names = sorted(names)

    def get_completions(self, document: Document, complete_event):
        text = document.text_before_cursor
        if text.startswith("/") and " " not in text and "\n" not in text:
            for name in self.names:
                if name.startswith(text):
                    yield Completion(name, start_position=-len(text))


def history_at(path: Path | None) -> History:
    """The input history file (created on first use); in memory if it cannot be written."""
    if path is None:
        return InMemoryHistory()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(exist_ok=True)
    except OSError as exc:
        log.warning("input history not kept: cannot write %s (%s)", path, exc.strerror or exc)
        return InMemoryHistory()
    return FileHistory(str(path))


class LineEditor:
    def __init__(self, history: Path | None, commands: Iterable[str] = ()):
        self._session: PromptSession[str] = PromptSession(
            history=history_at(history),
            key_bindings=_bindings(),
            multiline=True,  # the buffer shows several lines; our Enter binding decides when to send
            prompt_continuation="... ",
            completer=_SlashCommands(commands),
            complete_while_typing=False,  # Tab completes slash commands
            placeholder=PLACEHOLDER,
        )

    def read(self) -> str:
        """One message or command, as typed (raises KeyboardInterrupt on Ctrl-C, EOFError on Ctrl-D)."""
        return unwrap(self._session.prompt(PROMPT))

"""The interactive chat: read a line, answer it (or run a slash command), repeat."""

from __future__ import annotations

from typing import Callable

from rich.console import Console

from mlxcli.chat.commands import ALIASES, COMMANDS
from mlxcli.chat.editor import LineEditor
from mlxcli.chat.render import PlainView, TerminalView, footer
from mlxcli.chat.session import ChatSession, Exchange
from mlxcli.core.errors import ContextLengthExceeded, MlxcliError
from mlxcli.core.events import Event


class Repl:
    def __init__(self, session: ChatSession, console: Console, editor: LineEditor, *, show_reasoning: bool = True):
        self.session = session
        self.console = console
        self.editor = editor
        self.show_reasoning = show_reasoning
        self.done = False
        self.conversations: list[str] = []  # every stored conversation of this session, for the goodbye

    def run(self) -> None:
        backend = self.session.backend
        self.console.print(
            f"mlxcli chat · {backend.model} ({backend.where}) · /help for commands, Ctrl-D or /exit to leave",
            style="dim", highlight=False,
        )
        while not self.done:
            try:
                line = self.editor.read()
            except KeyboardInterrupt:  # Ctrl-C at the prompt clears the line
                continue
            except EOFError:
                break
            try:
                self.handle(line)
            except KeyboardInterrupt:  # Ctrl-C during a command: back to the prompt
                self.console.print("interrupted", style="dim")
            self._remember_conversation()
        self._goodbye()

    def handle(self, line: str) -> None:
        text = line.strip()
        if not text:
            return
        if text.startswith("/") and not text.startswith("//"):
            name, _, arg = text.partition(" ")
            command = COMMANDS.get(ALIASES.get(name.lower(), name.lower()))
            if command is None:
                self.error(f"unknown command {name}; /help lists them")
                return
            command.run(self, arg.strip())
            return
        message = line.strip("\n")
        if text.startswith("//"):
            message = message.replace("/", "", 1)
        self.answer(lambda on_event: self.session.ask(message, on_event))

    def answer(self, ask: Callable[[Callable[[Event], None]], Exchange]) -> None:
        """Run one answer through the view, then its footer; errors are shown and the chat goes on."""
        if self.console.is_terminal:
            view: TerminalView | PlainView = TerminalView(self.console, show_reasoning=self.show_reasoning)
        else:
            view = PlainView(self.console.file)
        try:
            with view:
                exchange = ask(view.feed)
        except MlxcliError as exc:
            too_long = isinstance(exc, ContextLengthExceeded) or "context length" in exc.message
            hint = " (/clear starts a new conversation)" if too_long else ""
            self.error(exc.message + hint)
            return
        self.console.print(footer(exchange), style="dim", highlight=False)
        self.console.print()

    def error(self, message: str) -> None:
        self.console.print(f"error: {message}", style="red", highlight=False)

    def _remember_conversation(self) -> None:
        cid = self.session.conversation_id
        if cid and cid not in self.conversations:
            self.conversations.append(cid)

    def _goodbye(self) -> None:
        if self.conversations:
            ids = ", ".join(self.conversations)
            self.console.print(f"saved: {ids} (mlxcli convo export ID)", style="dim", highlight=False)

"""Answers on the terminal: streamed as they arrive, finished as Markdown, with a one-line footer.

On a terminal (``TerminalView``) the answer is rendered as Markdown while it
streams: each finished block (a paragraph, a list, a fenced code block) is printed
once, for good, and only the block still growing is redrawn, in a live area at
the bottom (cropped to the screen, so long blocks never smear the scrollback).
Reasoning streams the same way, dimmed, before the answer. Elsewhere
(``PlainView``: a pipe, a file) the answer text is written exactly as it arrives.
"""

from __future__ import annotations

import re
import sys
from typing import Callable, TextIO

from rich.console import Console, ConsoleOptions, RenderableType, RenderResult
from rich.live import Live
from rich.markdown import Markdown
from rich.segment import Segment
from rich.spinner import Spinner
from rich.text import Text

from mlxcli.chat.session import Exchange
from mlxcli.core.events import Event, ReasoningDelta, TextDelta

REASONING_STYLE = "dim italic"
FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")


def markdown_blocks_end(text: str) -> int:
    """How much of a growing Markdown text is finished blocks (an offset; 0: none yet).

    A block is finished at a blank line outside a code fence that is followed by
    an unindented line (an indented one may still continue a list item).
    """
    end = offset = 0
    fence = None
    previous_blank = False
    for line in text.splitlines(keepends=True):
        if fence is not None:
            stripped = line.strip()
            if stripped.startswith(fence) and not stripped.strip(fence[0]):
                fence = None
        else:
            if previous_blank and line[:1] not in (" ", "\t", "\r", "\n"):
                end = offset
            match = FENCE.match(line)
            if match:
                fence = match.group(1)
        previous_blank = fence is None and not line.strip()
        offset += len(line)
    return end


class _Lines:
    """Lines already rendered (by ``Console.render_lines``), printed as they are."""

    def __init__(self, lines: list[list[Segment]]):
        self.lines = lines

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        for line in self.lines:
            yield from line
            yield Segment.line()


class _Bottom:
    """The last ``height`` lines of a renderable: the live area never outgrows the screen."""

    def __init__(self, renderable: RenderableType, height: int):
        self.renderable = renderable
        self.height = height

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield _Lines(console.render_lines(self.renderable, options)[-self.height :])


class _MarkdownSection:
    """The answer. A finished chunk is rendered after the chunk before it and printed without
    that context's lines: Markdown's spacing between blocks comes out exactly as in one rendering
    of the whole text, at a cost that does not grow with the answer. The growing block is
    rendered alone in the live area (a long code block only by its last screenful)."""

    def __init__(self, console: Console, code_theme: str):
        self._console = console
        self._code_theme = code_theme
        self.text = ""
        self._done = 0  # characters of ``text`` printed for good
        self._context = ""  # the last chunk printed
        self._context_lines = 0  # how many lines it renders to alone

    def _lines(self, text: str) -> list[list[Segment]]:
        markdown = Markdown(text, code_theme=self._code_theme)
        return self._console.render_lines(markdown, self._console.options, pad=False)

    def feed(self, text: str) -> list[RenderableType]:
        self.text += text
        return self._finish(self._done + markdown_blocks_end(self.text[self._done :]))

    def flush(self) -> list[RenderableType]:
        return self._finish(len(self.text))

    def tail(self, height: int) -> RenderableType:
        text = self.text[self._done :]
        lines = text.split("\n")
        if FENCE.match(lines[0]) and len(lines) > height + 1:  # a growing code block taller than the screen
            text = "\n".join([lines[0], *lines[-height:]])
        return Markdown(text, code_theme=self._code_theme)

    def _finish(self, end: int) -> list[RenderableType]:
        chunk = self.text[self._done : end]
        if not chunk.strip():
            return []
        self._done = end
        new = self._lines(self._context + chunk)[self._context_lines :]
        self._context, self._context_lines = chunk, len(self._lines(chunk))
        return [_Lines(new)] if new else []


class _TextSection:
    """Reasoning: plain dimmed text, printed a line at a time."""

    def __init__(self):
        self.text = ""

    def feed(self, text: str) -> list[RenderableType]:
        self.text += text
        end = self.text.rfind("\n") + 1
        done, self.text = self.text[:end], self.text[end:]
        return [Text(done.rstrip("\n"), style=REASONING_STYLE)] if done.strip() else []

    def tail(self, height: int) -> RenderableType:
        return Text(self.text, style=REASONING_STYLE)

    def flush(self) -> list[RenderableType]:
        done, self.text = self.text.strip("\n"), ""
        return [Text(done, style=REASONING_STYLE)] if done.strip() else []


class TerminalView:
    """Use as a context manager around one answer; ``feed`` each event."""

    def __init__(self, console: Console, *, show_reasoning: bool = True, code_theme: str = "monokai"):
        self.console = console
        self.show_reasoning = show_reasoning
        self.answer = _MarkdownSection(console, code_theme)
        self.reasoning = _TextSection()
        self._current: _MarkdownSection | _TextSection | None = None
        self._live = Live(
            Spinner("dots", Text("waiting for the model…", style="dim")),
            console=console, transient=True, refresh_per_second=10, redirect_stdout=False, redirect_stderr=False,
        )

    def __enter__(self) -> "TerminalView":
        self._restore_terminal = quiet_terminal(self.console.file)
        self._live.start()
        return self

    def __exit__(self, *exc) -> None:
        try:
            self._live.stop()  # transient: the live area goes; what it showed is printed for good below
            if self._current is not None:
                self._print(self._current.flush())
        finally:
            self._restore_terminal()

    def feed(self, event: Event) -> None:
        if isinstance(event, TextDelta):
            self._write(self.answer, event.text)
        elif isinstance(event, ReasoningDelta):
            if self.show_reasoning:
                self._write(self.reasoning, event.text)
            elif self._current is None:
                self._live.update(Spinner("dots", Text("thinking…", style="dim")))

    def _write(self, section: _MarkdownSection | _TextSection, text: str) -> None:
        if self._current is not section:
            if self._current is not None:
                self._print(self._current.flush())
                self._print([Text("")])
            self._current = section
        self._print(section.feed(text))
        height = max(1, self.console.height - 2)
        self._live.update(_Bottom(section.tail(height), height))

    def _print(self, renderables: list[RenderableType]) -> None:
        for r in renderables:
            self.console.print(r)


def quiet_terminal(file: TextIO) -> Callable[[], None]:
    """While an answer streams: no echo of what is typed (it is kept for the next prompt), and
    Ctrl-C does not discard output already written (NOFLSH), which would leave the live area
    half-drawn. Returns the function that puts the terminal back."""
    try:
        import termios

        fd = file.fileno()
        saved = termios.tcgetattr(fd)
    except (ImportError, OSError, ValueError, AttributeError):  # not a tty, or no termios here
        return lambda: None
    quiet = list(saved)
    quiet[3] = (quiet[3] & ~termios.ECHO) | termios.NOFLSH
    termios.tcsetattr(fd, termios.TCSANOW, quiet)
    return lambda: termios.tcsetattr(fd, termios.TCSANOW, saved)


class PlainView:
    """The answer text exactly as it arrives (reasoning left out): for pipes and files."""

    def __init__(self, out: TextIO | None = None):
        self.out = out or sys.stdout
        self._last = "\n"

    def __enter__(self) -> "PlainView":
        return self

    def __exit__(self, *exc) -> None:
        if self._last != "\n":
            self.out.write("\n")
        self.out.flush()

    def feed(self, event: Event) -> None:
        if isinstance(event, TextDelta) and event.text:
            self.out.write(event.text)
            self.out.flush()
            self._last = event.text[-1]


def footer(e: Exchange) -> str:
    """``57 tokens · 14.2 tok/s · 0.31 s to first token`` (and how it ended, if not normally)."""
    parts = []
    n = e.usage.completion_tokens
    if n:
        parts.append(f"{n} token{'' if n == 1 else 's'}")
    if e.tokens_per_second is not None:
        parts.append(f"{e.tokens_per_second:.1f} tok/s")
    if e.time_to_first_token is not None:
        parts.append(f"{e.time_to_first_token:.2f} s to first token")
    if e.interrupted:
        parts.append("stopped (Ctrl-C)")
    elif e.finish_reason == "length":
        parts.append("cut off by the token limit (--max-tokens)")
    if e.store_error:
        parts.append(f"not stored: {e.store_error}")
    return " · ".join(parts) or "no answer"

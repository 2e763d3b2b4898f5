"""The terminal view: streamed Markdown ends exactly as Markdown rendered at once; reasoning; plain output; footer."""

from __future__ import annotations

import io
import re

import pytest
from rich.console import Console
from rich.markdown import Markdown

from mlxcli.chat.render import PlainView, TerminalView, _MarkdownSection, footer, markdown_blocks_end
from mlxcli.chat.session import Exchange
from mlxcli.core.collect import Completion
from mlxcli.core.events import Finish, ReasoningDelta, TextDelta, Usage
from mlxcli.core.request import Message
from mlxcli.store import Turn

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")

ANSWER = """\
# Adding numbers

Here is a function:

```python
def add(a, b):

    return a + b
```

1. call it
2. print **the** result

    indented code

- a loose list

- with two items
  continued

> a quote
> on two lines

| a | b |
|---|---|
| 1 | 2 |

## Next

Done."""


@pytest.mark.parametrize(
    "text, finished",
    [
        ("Hello", ""),
        ("Hello\n\n", ""),  # the next block may be indented (a list item's continuation)
        ("Hello\n\nWor", "Hello\n\n"),
        ("Hello\n\n    code", ""),
        ("```\na\n\nb", ""),  # a blank line inside a fence ends nothing
        ("```\na\n\nb\n```\n\nAfter", "```\na\n\nb\n```\n\n"),
        ("1. one\n\n2. two", "1. one\n\n"),
    ],
)
def test_finished_markdown_blocks(text, finished):
    assert text[: markdown_blocks_end(text)] == finished


def console(width: int = 70) -> Console:
    return Console(file=io.StringIO(), force_terminal=True, width=width, height=30, color_system="truecolor")


def rendered(c: Console, renderables) -> list[str]:
    out = console(c.width)
    for r in renderables:
        out.print(r)
    return out.file.getvalue().splitlines()


@pytest.mark.parametrize("piece", [1, 3, 7])
def test_streamed_answer_prints_exactly_what_markdown_renders_at_once(piece):
    c = console()
    section = _MarkdownSection(c, "monokai")
    printed = []
    for i in range(0, len(ANSWER), piece):
        printed += section.feed(ANSWER[i : i + piece])
    assert printed, "finished blocks are printed while the answer streams"
    printed += section.flush()
    assert rendered(c, printed) == rendered(c, [Markdown(ANSWER, code_theme="monokai")])


def stream(view, events):
    with view:
        for event in events:
            view.feed(event)


def test_terminal_view_highlights_code_and_dims_reasoning_before_the_answer():
    c = console()
    events = [ReasoningDelta("The user wants\n"), ReasoningDelta("a function."), *(TextDelta(ch) for ch in ANSWER)]
    stream(TerminalView(c, show_reasoning=True), events)
    raw = c.file.getvalue()
    text = ANSI.sub("", raw)
    assert text.index("The user wants") < text.index("a function.") < text.index("Adding numbers")
    dim = raw.index("The user wants")
    assert "\x1b[2;3m" in raw[max(0, dim - 30) : dim]  # dim italic
    code = raw.index("def")
    assert "\x1b[38;2;" in raw[max(0, code - 40) : code]  # highlighted (truecolor)
    assert "```" not in text and "**" not in text  # rendered, not raw Markdown


def test_terminal_view_can_hide_reasoning():
    c = console()
    stream(TerminalView(c, show_reasoning=False), [ReasoningDelta("secret thoughts"), TextDelta("Answer.")])
    text = ANSI.sub("", c.file.getvalue())
    assert "secret thoughts" not in text and "Answer." in text


def test_plain_view_writes_the_answer_only_without_escape_codes():
    out = io.StringIO()
    stream(PlainView(out), [ReasoningDelta("hidden"), TextDelta("**Bold** "), TextDelta("answer")])
    assert out.getvalue() == "**Bold** answer\n"


def exchange(**kw) -> Exchange:
    completion = Completion(text="x", finish=kw.pop("finish", Finish("stop", Usage(10, 57))))
    turn = Turn.from_exchange("chat_1", "chat", "m", [Message("user", "q")], completion)
    return Exchange(question=Message("user", "q"), completion=completion, model="m", turn=turn, **kw)


def test_footer():
    assert footer(exchange(time_to_first_token=0.314, decode_seconds=4.0)) == (
        "57 tokens · 14.0 tok/s · 0.31 s to first token"
    )
    assert footer(exchange(finish=Finish("length", Usage(10, 1)), time_to_first_token=0.5)) == (
        "1 token · 0.50 s to first token · cut off by the token limit (--max-tokens)"
    )
    assert footer(exchange(finish=Finish("cancelled"), interrupted=True)) == "stopped (Ctrl-C)"

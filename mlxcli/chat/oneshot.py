"""One question, one answer, for scripts: `mlxcli chat -p "…"`, or text piped on stdin.

stdout gets the answer and nothing else: exactly the text as it arrives when
stdout is not a terminal (no colours, no escape codes), rendered like the REPL
when it is. ``--json`` prints one JSON object instead (``result_json``).
Errors go to stderr with a non-zero exit status (see ``EXIT_*``).
"""

from __future__ import annotations

import sys
from typing import Any, TextIO

import orjson
from rich.console import Console

from mlxcli.chat.render import PlainView, TerminalView, footer
from mlxcli.chat.session import ChatSession, Exchange
from mlxcli.core.errors import MlxcliError

EXIT_OK = 0
EXIT_FAILED = 1  # the model, the server or the store failed
EXIT_USAGE = 2  # nothing to ask, bad flags
EXIT_INTERRUPTED = 130  # Ctrl-C (128 + SIGINT, as shells report it)


def question(prompt: str | None, stdin: str | None) -> str:
    """The prompt and piped text together (prompt first, a blank line between)."""
    parts = [p.strip("\n") for p in (prompt, stdin) if p and p.strip()]
    return "\n\n".join(parts)


def result_json(session: ChatSession, e: Exchange) -> dict[str, Any]:
    """The machine-readable result (README: `mlxcli chat`, --json)."""
    return {
        "model": e.model,
        "content": e.completion.text,
        "reasoning": e.completion.reasoning or None,
        "finish_reason": e.finish_reason,  # stop | length | cancelled
        "usage": {"prompt_tokens": e.usage.prompt_tokens, "completion_tokens": e.usage.completion_tokens},
        "time_to_first_token": e.time_to_first_token,  # seconds; null if no token came
        "tokens_per_second": e.tokens_per_second,  # decode speed; null under two tokens
        "conversation_id": session.conversation_id if e.stored else None,
        "turn_id": e.turn.id if e.stored else None,
    }


def run(
    session: ChatSession,
    text: str,
    *,
    as_json: bool = False,
    stats: bool = False,
    show_reasoning: bool = True,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    stdout = stdout or sys.stdout
    stderr = stderr or sys.stderr
    if as_json:
        view = _Silent()
    elif stdout.isatty():
        view = TerminalView(Console(file=stdout), show_reasoning=show_reasoning)
    else:
        view = PlainView(stdout)
    try:
        with view:
            exchange = session.ask(text, view.feed)
    except MlxcliError as exc:
        print(f"error: {exc.message}", file=stderr)
        return EXIT_FAILED
    if stats:
        print(footer(exchange), file=stderr)
    if exchange.store_error:
        print(f"warning: not stored: {exchange.store_error}", file=stderr)
    if as_json:
        stdout.write(orjson.dumps(result_json(session, exchange)).decode() + "\n")
        stdout.flush()
    if exchange.interrupted:
        print("interrupted", file=stderr)
        return EXIT_INTERRUPTED
    if session.response_format is not None and exchange.finish_reason == "length":
        print("error: the answer reached --max-tokens before its JSON was complete", file=stderr)
        return EXIT_FAILED
    return EXIT_OK


class _Silent:
    def __enter__(self) -> "_Silent":
        return self

    def __exit__(self, *exc) -> None:
        pass

    def feed(self, _event) -> None:
        pass

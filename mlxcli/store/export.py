"""Conversations → JSON, JSON Lines or Markdown (`mlxcli convo export`).

JSON and JSON Lines use the archive format (``records.conversation_json``):
one object per conversation, the same bytes whether it was hot or archived.
"""

from __future__ import annotations

from datetime import datetime, timezone

import orjson

from mlxcli.store.records import Conversation, StoredMessage, Turn, conversation_json

FORMATS = ("json", "jsonl", "markdown")


def render(conversations: list[Conversation], fmt: str, *, single: bool) -> str:
    """``single``: one conversation asked for by id (JSON gives an object rather than an array)."""
    if fmt == "json":
        docs = [conversation_json(c) for c in conversations]
        return orjson.dumps(docs[0] if single else docs, option=orjson.OPT_INDENT_2).decode() + "\n"
    if fmt == "jsonl":
        return "".join(orjson.dumps(conversation_json(c)).decode() + "\n" for c in conversations)
    if fmt == "markdown":
        return "\n\n".join(markdown(c) for c in conversations)
    raise ValueError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")


def timestamp(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def markdown(c: Conversation) -> str:
    models = ", ".join(sorted({t.model for t in c.turns}))
    sources = ", ".join(sorted({t.source for t in c.turns}))
    lines = [
        f"# Conversation {c.id}",
        "",
        f"- Created: {timestamp(c.created_at)}; last used: {timestamp(c.updated_at)}"
        f" ({'archived' if c.archived else 'hot store'})",
        f"- Turns: {len(c.turns)}; model: {models or '-'}; source: {sources or '-'}",
    ]
    previous = None
    for number, turn in enumerate(c.turns, 1):
        lines += ["", *_turn(number, turn, branches=turn.previous_id is not None and turn.previous_id != previous)]
        previous = turn.id
    return "\n".join(lines) + "\n"


def _turn(number: int, turn: Turn, *, branches: bool) -> list[str]:
    heading = f"## Turn {number}: {turn.id} ({timestamp(turn.created_at)})"
    lines = [heading, ""]
    notes = []
    if branches:
        notes.append(f"continues {turn.previous_id}")
    if turn.status != "completed":
        notes.append(f"status: {turn.status}")
    notes.append(f"{turn.usage.prompt_tokens} input + {turn.usage.completion_tokens} output tokens")
    lines += [f"_{'; '.join(notes)}_", ""]
    if turn.instructions:
        lines += ["**Instructions**", "", _quote(turn.instructions), ""]
    for message in turn.input + turn.output:
        lines += _message(message)
    return lines[:-1] if lines and lines[-1] == "" else lines


def _message(m: StoredMessage) -> list[str]:
    if m.role == "tool":
        return [f"**Tool result** (`{m.tool_call_id}`)", "", _fenced(m.content or ""), ""]
    lines = []
    if m.reasoning:
        lines += [f"**{m.role.capitalize()} (reasoning)**", "", _quote(m.reasoning), ""]
    if m.content or not (m.reasoning or m.tool_calls):
        lines += [f"**{m.role.capitalize()}**", "", m.content or "", ""]
    for call in m.tool_calls:
        lines += [f"**Tool call** `{call.name}` (`{call.id}`)", "", _fenced(call.arguments, "json"), ""]
    return lines


def _quote(text: str) -> str:
    return "\n".join(f"> {line}" if line else ">" for line in text.splitlines() or [""])


def _fenced(text: str, lang: str = "") -> str:
    fence = "```"
    while fence in text:
        fence += "`"
    return f"{fence}{lang}\n{text}\n{fence}"

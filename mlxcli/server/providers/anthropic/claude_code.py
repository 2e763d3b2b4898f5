"""Claude Code's system prompt, kept the same from one request to the next so the prompt cache can reuse it.

A prompt that changes near its start cannot reuse the KV cache of the requests before it: everything after
the change (Claude Code's ~25k tokens of tools, then the whole conversation) is read again. Claude Code 2.1
writes, in its system prompt, text that changes between the requests of one conversation (found in its
recorded traffic, tests/data/claude_code_turns.json.xz):

- a first line ``x-anthropic-billing-header: cc_version=…; cc_entrypoint=…; cch=…;`` whose version suffix
  and hash change on every request (unless ``CLAUDE_CODE_ATTRIBUTION_HEADER=0``). It means nothing to the
  model: dropped.
- its last section, ``gitStatus: This is the git status at the start of the conversation. …`` (branch,
  ``git status``, recent commits), taken again by every process of a conversation that goes on
  (``claude -p --continue``, ``--resume``): any change to the repository between two turns changed it.
- ``<total_tokens>N tokens left</total_tokens>`` (``CLAUDE_CODE_TOTAL_TOKENS_REMINDER``), a count.

The last two are moved, word for word, to the end of the conversation: into the last user (or tool result)
message, in a ``<system-reminder>`` block, the way Claude Code itself gives the model per-turn context. Only
the few tokens of that block and of the last message are read again on the next request.
"""

from __future__ import annotations

import re

from mlxcli.core.request import Message

BILLING_HEADER = "x-anthropic-billing-header:"
VOLATILE = (
    re.compile(r"(?:\A|\n\n)gitStatus: This is the git status at the start of the conversation\..*\Z", re.S),
    re.compile(r"\n*<total_tokens>\w+ tokens left</total_tokens>"),
)


def stable_system(text: str | None) -> tuple[str | None, str]:
    """(the system prompt without the billing header and the parts that change, those parts)."""
    if text is None:
        return None, ""
    if text.startswith(BILLING_HEADER):
        text = text.split("\n", 1)[1] if "\n" in text else ""
    found = sorted((m for pattern in VOLATILE for m in pattern.finditer(text)), key=lambda m: m.start())
    for m in reversed(found):
        text = text[: m.start()] + text[m.end() :]
    return text, "\n\n".join(m.group().strip() for m in found)


def append_context(messages: list[Message], context: str) -> None:
    """``context`` at the end of the last user or tool message (else of the system prompt), as a system reminder."""
    last = next((m for m in reversed(messages) if m.role in ("user", "tool")), messages[0] if messages else None)
    if context and last is not None:
        last.content = f"{last.content or ''}\n\n<system-reminder>\n{context}\n</system-reminder>".lstrip("\n")

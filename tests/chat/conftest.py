"""A scripted model that shows what it was asked, for the chat tests."""

from __future__ import annotations

import re

import pytest

from tests.support.models import Fail
from tests.tools.conftest import tool_engine, tool_server, tool_tokenizer_dir  # noqa: F401

TURN = re.compile(r"<\|im_start\|>(\w+)\n(.*?)<\|im_end\|>", re.S)
LONG_END = "THE END"


def turns(prompt: str) -> list[tuple[str, str]]:
    """(role, content) of every message in a rendered SmolLM2 (ChatML) prompt."""
    return TURN.findall(prompt)


def respond(prompt: str) -> str:
    """``Reply N: <last question>``, N counting the questions the model saw (so history, /clear and
    /retry show in the answer); ``Arr!`` when the system prompt asks for a pirate; a long story, a
    Markdown answer with code, or a failure half-way, on request."""
    messages = turns(prompt)
    questions = [content for role, content in messages if role == "user"]
    system = " ".join(content for role, content in messages if role == "system")
    last = questions[-1] if questions else ""
    if "long story" in last:
        return " ".join(f"word{i}" for i in range(400)) + " " + LONG_END
    if "show code" in last:
        return "Here you go:\n\n```python\ndef add(a, b):\n    return a + b\n```\n\nCall `add(1, 2)`."
    if "break" in last:
        return Fail("Half an answer")
    pirate = "Arr! " if "pirate" in system else ""
    return f"{pirate}Reply {len(questions)}: {' / '.join(last.splitlines())}"


@pytest.fixture
def chat_engine(scripted_engine):
    return scripted_engine(respond)

"""Claude Code's turns reuse the prompt cache: recorded traffic replayed against the server.

tests/data/claude_code_turns.json.xz holds the six Messages requests (tools and all, ~32k prompt tokens each)
that Claude Code 2.1.197 sent in a three-turn session against the scripted agent server
(tests/support/scripted_server.py): ``claude -p`` in a git project, then ``claude -p --continue`` after
main.py changed, then again after a commit, each turn a tool call (``Bash ls``) and an answer;
``CLAUDE_CODE_TOTAL_TOKENS_REMINDER=countdown``; ``metadata`` left out. Each process wrote the project's git
status afresh into the end of its system prompt (before the ~25k tokens of tools, in the prompt).
"""

from __future__ import annotations

import json
import lzma
from pathlib import Path

import httpx
import pytest

from tests.support.models import scripted_model
from tests.support.scripted_server import SCRIPTS

RECORDED = Path(__file__).resolve().parent.parent / "data" / "claude_code_turns.json.xz"


@pytest.fixture(scope="module")
def recorded() -> list[dict]:
    return json.loads(lzma.decompress(RECORDED.read_bytes()))


@pytest.fixture
def prompts() -> list[str]:
    return []


@pytest.fixture
def server(tokenizer_dir, run_engine, serve, prompts):
    from mlxcli.engine.engine import EngineSettings

    def respond(prompt: str) -> str:
        prompts.append(prompt)
        return SCRIPTS["agent"](prompt)

    model = scripted_model(tokenizer_dir, respond, context_window=65536)
    return serve(run_engine([model], EngineSettings(temperature=0.0)))


def replay(server, body: dict) -> dict:
    r = httpx.post(server.url + "/v1/messages?beta=true", json=body | {"stream": False}, timeout=300)
    assert r.status_code == 200, r.text
    return r.json()


def test_recorded_claude_code_turns_read_the_previous_prompt_from_the_cache(server, recorded, prompts):
    systems = [json.dumps(body["system"]) for body in recorded]
    assert len(set(systems)) == 3 and systems[1] != systems[2] and systems[3] != systems[4]  # one per turn
    previous = None
    for n, body in enumerate(recorded):
        answer = replay(server, body)
        if n + 1 < len(recorded):  # the replay answers as the recording did: the next request's history
            sent = recorded[n + 1]["messages"][len(body["messages"])]["content"]
            assert [block["type"] for block in sent] == [block["type"] for block in answer["content"]]
        usage = answer["usage"]
        if previous is not None:
            assert usage["cache_read_input_tokens"] >= 0.9 * previous, (n, usage, previous)
        previous = usage["input_tokens"] + usage["cache_read_input_tokens"]
    # The model was told the same words: the git status and the token count at the end of the conversation.
    last = prompts[-1]
    system = last[: last.index("<|im_end|>")]
    assert "gitStatus:" not in system and "<total_tokens>" not in system and "billing" not in last
    tail = last[last.rindex("<|im_start|>user") :]
    moved = "<system-reminder>\n<total_tokens>200000 tokens left</total_tokens>\n\ngitStatus: This is the git status at the start"
    assert moved in tail and "greet the world\naad3dd7 first commit\n</system-reminder>\n</tool_response>" in tail

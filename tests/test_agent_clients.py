"""Every agent CLI completes a turn against the server: scripts/agent_clients.sh, run as a user would.

Slow: the script installs Claude Code, Codex, OpenCode and the Vercel AI SDK from npm (into .cache/agents, kept
between runs) and runs each against the scripted agent server (tests/support/scripted_server.py).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.process import free_port

REPO = Path(__file__).resolve().parent.parent
CLIENTS = ("claude", "codex", "codex-ws", "opencode", "ai-sdk")


@pytest.fixture(scope="module")
def npm() -> str:
    npm = shutil.which("npm")
    if npm is None:
        pytest.skip("npm is not installed: the agent CLIs install with it")
    ping = subprocess.run([npm, "ping"], capture_output=True, text=True, timeout=120)
    if ping.returncode != 0:
        pytest.skip(f"the npm registry is unreachable: {(ping.stderr or ping.stdout).strip()[-300:]}")
    return npm


@pytest.mark.slow
def test_every_agent_cli_completes_a_tool_call_and_an_answer(npm, test_home):
    env = {**os.environ, "MLXCLI_HOME": str(test_home), "PORT": str(free_port())}
    run = subprocess.run(
        ["bash", str(REPO / "scripts" / "agent_clients.sh")], env=env, capture_output=True, text=True, timeout=3000
    )
    out = run.stdout
    assert run.returncode == 0, out + run.stderr[-3000:]
    for client in CLIENTS:
        result = re.search(rf"^{client}: exit (\d+); routes: (.*)\n  tool call: (.*); final answer: (.*)$", out, re.M)
        assert result is not None, (client, out)
        status, routes, call, answer = result.groups()
        assert status == "0" and "200" in routes and call != "none" and "tool answered" in answer, (client, out)
    # Codex's WebSocket handshake is refused once, and it goes on over HTTP at once.
    assert re.search(r"^codex-ws: .*GET /v1/responses 426 x1; POST /v1/responses 200 x\d", out, re.M), out

"""Every agent CLI completes a turn against the server: scripts/agent_clients.sh, and `mlxcli launch`.

Slow: the agent CLIs install from npm (scripts/agent_clients/install.sh, into .cache/agents, kept between
runs); each runs against the scripted agent server (tests/support/scripted_server.py), whose first answer is a
call to one of the tools the agent offers and whose answer to the tool's result ends the turn.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.process import free_port

REPO = Path(__file__).resolve().parent.parent
AGENTS_DIR = REPO / ".cache" / "agents"
CLIENTS = ("claude", "codex", "codex-ws", "opencode", "ai-sdk")
PROMPT = "List the files in this directory with a tool, then say how many there are."

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def agents_bin() -> Path:
    """The agent CLIs' commands, installed from npm."""
    npm = shutil.which("npm")
    if npm is None:
        pytest.skip("npm is not installed: the agent CLIs install with it")
    ping = subprocess.run([npm, "ping"], capture_output=True, text=True, timeout=120)
    if ping.returncode != 0:
        pytest.skip(f"the npm registry is unreachable: {(ping.stderr or ping.stdout).strip()[-300:]}")
    install = subprocess.run(["bash", str(REPO / "scripts" / "agent_clients" / "install.sh"), str(AGENTS_DIR)], capture_output=True, text=True)
    assert install.returncode == 0, install.stderr
    return AGENTS_DIR / "npm" / "node_modules" / ".bin"


def test_every_agent_cli_completes_a_tool_call_and_an_answer(agents_bin, test_home):
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


# Each agent as `mlxcli launch AGENT -- ARGS` runs it: its own home in tmp_path, the prompt as a one-shot turn.
LAUNCHES = {
    "claude": (["-p", PROMPT], lambda home: {"CLAUDE_CONFIG_DIR": str(home / ".claude")}),
    "codex": (["exec", "--skip-git-repo-check", PROMPT], lambda home: {"CODEX_HOME": str(home / ".codex")}),
    "opencode": (["run", PROMPT], lambda home: {f"XDG_{d}_HOME": str(home / d.lower()) for d in ("DATA", "CONFIG", "CACHE", "STATE")}),
}


@pytest.mark.parametrize("agent", list(LAUNCHES))
def test_launch_runs_the_agent_against_a_server_it_starts(agent, agents_bin, test_home, tmp_path):
    """`mlxcli launch AGENT -- ARGS`, with the scripted agent server standing in for `mlxcli serve`
    (tests/support/scripted_launch.py): the agent's turn completes, and the server is stopped after it."""
    args, homes = LAUNCHES[agent]
    (tmp_path / ".codex").mkdir()
    (tmp_path / "a.txt").touch()
    env = {
        **os.environ, **homes(tmp_path),
        "PATH": f"{agents_bin}{os.pathsep}{os.environ['PATH']}", "PYTHONPATH": str(REPO),
        "MLXCLI_HOME": str(test_home), "MLXCLI_STORE_PATH": str(tmp_path / "store.db"),
    }
    for name in ("MLXCLI_URL", "MLXCLI_MODEL", "MLXCLI_API_KEY"):  # a user's settings are not the test's
        env.pop(name, None)
    run = subprocess.run(
        [sys.executable, "-m", "tests.support.scripted_launch", agent, "--", *args],
        env=env, cwd=tmp_path, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=600,
    )
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-3000:]
    assert "tool answered" in run.stdout, run.stdout
    log = Path(re.search(r"\(log: (.*)\) \.\.\.", run.stderr)[1]).read_text()
    assert "agent: tool call" in log and "received SIGTERM" in log, log
    assert not re.search(r" (GET|POST) \S+ [45]\d\d ", log), log

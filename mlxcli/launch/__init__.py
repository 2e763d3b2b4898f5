"""`mlxcli launch`: run an agent CLI (Claude Code, Codex, OpenCode) pointed at an mlxcli server.

The server is the one answering at the given or default URL, or, when none answers at the default one,
`mlxcli serve` started for the agent and stopped when it exits (server.py). The model's real context window
is read from the server; agents.py says what each agent is given.
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import sys
from typing import TextIO

from mlxcli.client.urls import server_root
from mlxcli.launch.agents import AGENTS, Plan, Target
from mlxcli.launch.server import ChildServer, LaunchError, chat_model, default_port, probe

DEFAULT_URL = "http://127.0.0.1:8000"
NO_KEY = "mlxcli"  # what the agents send when the server wants no key (they all insist on one)

__all__ = ["AGENTS", "DEFAULT_URL", "LaunchError", "launch"]


def launch(
    agent: str, *, model: str | None, url: str | None, api_key: str | None, extra: list[str], print_env: bool, out: TextIO = sys.stderr
) -> int:
    """Run ``agent`` with ``extra`` arguments (or, with ``print_env``, print what it would be given); its exit status."""
    chosen = AGENTS[agent]
    root = server_root(url or DEFAULT_URL)
    program = shutil.which(chosen.program)
    if program is None and not print_env:
        raise LaunchError(f"{chosen.name} is not installed (or not on PATH): {chosen.install}")
    started = None
    if probe(root, api_key) is None:
        if url is not None:
            raise LaunchError(f"no mlxcli server answers at {root} (start one with `mlxcli serve`, or leave out --url)")
        started = ChildServer(default_port(root), model)
        print(f"mlxcli launch: starting mlxcli serve on {started.url} (log: {started.log}) ...", file=out, flush=True)
        started.wait_ready(api_key)
        root = started.url
    try:
        served, window = chat_model(root, api_key, None if started else model)
        plan = chosen.plan(Target(root, served, window, api_key or NO_KEY), extra)
        command = shlex.join([chosen.program, *plan.args])
        if print_env:
            for key, value in plan.env.items():
                print(f"{key}={shlex.quote(value)}")
            print(command)
            return 0
        print(f"mlxcli launch: {chosen.name} → {root}, model {served} ({window} tokens of context)", file=out)
        for key, value in plan.env.items():
            print(f"  {key}={_masked(value, api_key)}", file=out)
        print(f"  {_masked(command, api_key)}", file=out, flush=True)
        return _run(program, plan)
    finally:
        if started is not None:
            started.stop()


def _run(program: str, plan: Plan) -> int:
    """The agent in the foreground; Ctrl-C is its own (Claude Code and Codex interrupt a turn with it)."""
    proc = subprocess.Popen([program, *plan.args], env={**os.environ, **plan.env})
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    terminate = signal.signal(signal.SIGTERM, lambda *_: proc.terminate())
    try:
        return proc.wait()
    finally:
        signal.signal(signal.SIGINT, previous)
        signal.signal(signal.SIGTERM, terminate)


def _masked(text: str, api_key: str | None) -> str:
    return text.replace(api_key, "***") if api_key else text

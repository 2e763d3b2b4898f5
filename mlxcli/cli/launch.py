"""`mlxcli launch claude|codex|opencode`: an agent CLI pointed at an mlxcli server (mlxcli/launch/)."""

from __future__ import annotations

from typing import Annotated, List, Optional

import typer

from mlxcli.cli import app
from mlxcli.cli.common import fail
from mlxcli.core.errors import MlxcliError


@app.command()
def launch(
    agent: Annotated[str, typer.Argument(help="The agent: claude (Claude Code), codex or opencode.", show_default=False)],
    args: Annotated[Optional[List[str]], typer.Argument(help="Arguments for the agent, after `--` (e.g. -- -p \"fix the test\").", show_default=False)] = None,
    model: Annotated[Optional[str], typer.Option("--model", "-m", envvar="MLXCLI_MODEL", help="The model (a name or alias the server lists; default: its first chat model). For a server launch starts: the model it serves.", show_default=False)] = None,
    url: Annotated[Optional[str], typer.Option("--url", envvar="MLXCLI_URL", help="A running server's address (default http://127.0.0.1:8000; when none answers there, `mlxcli serve` is started for the agent and stopped after it).", show_default=False)] = None,
    api_key: Annotated[Optional[str], typer.Option("--api-key", envvar="MLXCLI_API_KEY", help="The server's API key, if it wants one.", show_default=False)] = None,
    print_env: Annotated[bool, typer.Option("--print-env", help="Print the environment and the command the agent would get, and exit.")] = False,
) -> None:
    """Run an agent CLI pointed at mlxcli: its base URL, every model name it uses, the real context window."""
    from mlxcli.launch import AGENTS, launch as run

    if agent not in AGENTS:
        fail(f"unknown agent {agent!r} (one of: {', '.join(AGENTS)})")
    try:
        status = run(agent, model=model, url=url, api_key=api_key, extra=list(args or []), print_env=print_env)
    except MlxcliError as exc:
        fail(exc.message)
    raise typer.Exit(status)

"""`mlxcli launch` whose server, when it starts one, is the scripted agent server (scripted_server.py).

    python -m tests.support.scripted_launch AGENT [LAUNCH OPTIONS] [-- AGENT ARGS]

Its default URL is a free port of this machine, so it always starts its own server (unless --url).
"""

from __future__ import annotations

import sys

import mlxcli.launch
from mlxcli.launch import server
from tests.support.process import free_port


def main() -> None:
    server.SERVE = [sys.executable, "-m", "tests.support.scripted_server", "--script", "agent", "--prompt-cache-dir", "none"]
    mlxcli.launch.DEFAULT_URL = f"http://127.0.0.1:{free_port()}"
    from mlxcli.cli import main as cli

    sys.argv = ["mlxcli", "launch", *sys.argv[1:]]
    cli()


if __name__ == "__main__":
    main()

"""`mlxcli serve --distributed` / `--launch N`: the ranks of a model sharded over mx.distributed.

Rank 0 serves HTTP as usual; every other rank runs the same engine without HTTP or store
(engine/peers.py) until rank 0 ends the loop, or until a rank is lost.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from mlxcli.cli.common import exit_process, fail, start_engine
from mlxcli.engine import platform

if TYPE_CHECKING:
    from mlxcli.engine.engine import MlxEngine

LAUNCH_FLAG = "--launch"
LAUNCH_DIR = "MLXCLI_LAUNCH_DIR"  # set by --launch for its ranks: rank 0 leaves its pid and exit status there


def rank(mode: str, fast_path: bool) -> int:
    """This process's rank in the group it shards over (joining it), or a clear error when alone."""
    platform.configure(fast_path)  # before mlx is imported
    from mlxcli.core.errors import MlxcliError
    from mlxcli.engine import group

    try:
        number = group.check_world(mode).rank()
    except MlxcliError as exc:
        fail(exc.message)
    if number == 0 and (status := os.environ.get(LAUNCH_DIR)):
        (Path(status) / "rank0.pid").write_text(str(os.getpid()))
    return number


def follow(specs, *, fast_path: bool, settings) -> NoReturn:
    """A rank above 0: the engine alone, fed by rank 0, until rank 0 stops (0) or a rank is lost (1)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches every rank: rank 0 decides when they stop
    engine = start_engine(specs, fast_path=fast_path, settings=settings)
    engine.wait()
    exit_process(1 if engine.peers.status.lost else 0)


def watch(engine: "MlxEngine") -> None:
    """Rank 0: a lost rank stops the server the way SIGTERM does (in-flight requests already failed)."""
    engine.peers.on_lost = lambda: os.kill(os.getpid(), signal.SIGTERM)


def exit_code(engine: "MlxEngine") -> int:
    """Rank 0's exit status (1 after a lost rank), left for ``--launch`` too: mlx.launch exits 0 anyway."""
    code = 1 if engine.peers is not None and engine.peers.status.lost else 0
    if status := os.environ.get(LAUNCH_DIR):
        with contextlib.suppress(OSError):  # --launch's supervisor already gone: nobody to tell
            (Path(status) / "rank0.exit").write_text(str(code))
    return code


def launch(ranks: int, mode: str | None, argv: list[str]) -> NoReturn:
    """Run this same command as ``ranks`` local ranks under mlx.launch (ring backend over loopback)."""
    launcher = shutil.which("mlx.launch", path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    if launcher is None:
        fail("--launch needs mlx.launch (installed with mlx), which is not on PATH")
    command = [sys.executable, "-m", "mlxcli", *without_launch(argv)]
    if mode is None:
        command += ["--distributed", "tensor"]
    port = free_ports(ranks)
    launch_command = [launcher, "-n", str(ranks), "--backend", "ring", "--starting-port", str(port), "--", *command]
    with tempfile.TemporaryDirectory(prefix="mlxcli-launch-") as status:
        sys.exit(supervise(launch_command, Path(status)))


def supervise(command: list[str], status: Path) -> int:
    """Run mlx.launch and answer for it: SIGTERM goes to rank 0, which stops every rank in turn (mlx.launch
    itself would die and leave the ranks running), and the exit status is rank 0's (mlx.launch's is 0
    even when a rank failed); 1 when rank 0 left none (it failed to start, or was killed)."""
    child = subprocess.Popen(command, env={**os.environ, LAUNCH_DIR: str(status)})
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    signal.signal(signal.SIGINT, lambda *_: None)  # Ctrl-C reaches the ranks themselves (one process group)
    forwarded = False
    while child.poll() is None:
        rank0 = status / "rank0.pid"
        if stopping.is_set() and not forwarded and rank0.exists():
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(rank0.read_text()), signal.SIGTERM)
            forwarded = True
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.wait(timeout=0.2)
    exit_file = status / "rank0.exit"
    return int(exit_file.read_text()) if exit_file.exists() else 1


def without_launch(argv: list[str]) -> list[str]:
    """``argv`` without ``--launch N`` / ``--launch=N`` (the ranks must not launch again)."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == LAUNCH_FLAG:
            skip = True
        elif not arg.startswith(LAUNCH_FLAG + "="):
            out.append(arg)
    return out


def free_ports(count: int, attempts: int = 50) -> int:
    """The first of ``count`` consecutive free loopback ports: the ring listens on one port per rank,
    counting up from the one it is given, so every one of them must be free, not only the first."""
    for _ in range(attempts):
        with contextlib.ExitStack() as held:
            first = held.enter_context(socket.socket())
            first.bind(("127.0.0.1", 0))
            start = first.getsockname()[1]
            if start + count > 65536:
                continue
            try:
                for port in range(start + 1, start + count):
                    held.enter_context(socket.socket()).bind(("127.0.0.1", port))
            except OSError:
                continue
            return start
    fail(f"no {count} consecutive free ports on 127.0.0.1 for the ring backend")

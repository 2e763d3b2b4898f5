"""Run a command with a time limit, in a process group of its own: on the limit, or when this process is told
to stop (SIGTERM, SIGINT), the whole group is stopped (SIGTERM, then SIGKILL 10 s later), whatever the command
started, and what it leaves running when it ends. Exit status: the command's, 124 when it ran out of time (as
coreutils' `timeout`, which macOS lacks), 130 when stopped.
    python watchdog.py SECONDS COMMAND [ARGS...]"""

from __future__ import annotations

import os
import signal
import subprocess
import sys


def main() -> int:
    limit, command = float(sys.argv[1]), sys.argv[2:]
    proc = subprocess.Popen(command, start_new_session=True)

    def interrupted(_signum, _frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupted)
    signal.signal(signal.SIGINT, interrupted)
    try:
        status = proc.wait(limit)
    except subprocess.TimeoutExpired:
        status = 124
    except KeyboardInterrupt:
        status = 130
    stop(proc)
    return status


def stop(proc: subprocess.Popen) -> None:
    """The command's whole group (what it left running too): SIGTERM, then SIGKILL what is left after 10 s."""
    group_signal(proc.pid, signal.SIGTERM)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        pass
    group_signal(proc.pid, signal.SIGKILL)
    proc.wait()


def group_signal(group: int, sig: int) -> None:
    try:
        os.killpg(group, sig)
    except ProcessLookupError:  # nothing left in it
        pass


if __name__ == "__main__":
    sys.exit(main())

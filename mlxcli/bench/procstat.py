"""A local server's CPU time, read from /proc (Linux): which process listens on a port, and the CPU
seconds it (with its child processes: the ranks of ``serve --launch``) has used.

Everything here answers None where it cannot tell (another OS, a server on another machine, a process
of another user): the benchmark then leaves the column empty rather than guessing.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from pathlib import Path
from urllib.parse import urlsplit

PROC = Path("/proc")
LISTEN = "0A"  # TCP state in /proc/net/tcp*
TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def server_pid(url: str) -> int | None:
    """The process listening on ``url``'s port, when the URL names this machine."""
    parts = urlsplit(url)
    if not parts.hostname or not _is_local(parts.hostname):
        return None
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return listening_pid(port)


def _is_local(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        try:
            address = ipaddress.ip_address(socket.gethostbyname(host))
        except OSError:
            return False
    return address.is_loopback or address.is_unspecified or str(address) in _own_addresses()


def _own_addresses() -> set[str]:
    try:
        return {info[4][0] for info in socket.getaddrinfo(socket.gethostname(), None)}
    except OSError:
        return set()


def listening_pid(port: int) -> int | None:
    """The process that holds a listening TCP socket on ``port`` (IPv4 or IPv6), if this user can see it."""
    inodes = _listening_inodes(port)
    if not inodes:
        return None
    for pid in _pids():
        try:
            for fd in (PROC / str(pid) / "fd").iterdir():
                target = os.readlink(fd)
                if target.startswith("socket:[") and target[8:-1] in inodes:
                    return pid
        except OSError:  # gone, or not ours to read
            continue
    return None


def _listening_inodes(port: int) -> set[str]:
    inodes = set()
    for table in ("tcp", "tcp6"):
        try:
            lines = (PROC / "net" / table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 9 and fields[3] == LISTEN and int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(fields[9])
    return inodes


def _pids() -> list[int]:
    try:
        return [int(p.name) for p in PROC.iterdir() if p.name.isdigit()]
    except OSError:
        return []


def _stat(pid: int) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name (which may hold spaces)."""
    try:
        text = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()


def cpu_seconds(pid: int) -> float | None:
    """User and system CPU seconds of ``pid`` and its live descendants; None once it is gone."""
    own = _stat(pid)
    if own is None:
        return None
    children: dict[int, list[int]] = {}
    stats: dict[int, list[str]] = {pid: own}
    for other in _pids():
        if other == pid:
            continue
        fields = _stat(other)
        if fields is not None:
            stats[other] = fields
            children.setdefault(int(fields[1]), []).append(other)  # field 4: the parent's pid
    total, todo = 0.0, [pid]
    while todo:
        current = todo.pop()
        fields = stats[current]
        total += (int(fields[11]) + int(fields[12])) / TICKS  # fields 14, 15: utime, stime
        todo += children.get(current, [])
    return total


def thread_seconds(pid: int) -> dict[int, float]:
    """CPU seconds of each thread of ``pid``, by its OS thread id."""
    seconds = {}
    try:
        tasks = list((PROC / str(pid) / "task").iterdir())
    except OSError:
        return seconds
    for task in tasks:
        try:
            text = (task / "stat").read_text()
        except OSError:
            continue
        fields = text[text.rindex(")") + 2 :].split()
        seconds[int(task.name)] = (int(fields[11]) + int(fields[12])) / TICKS
    return seconds

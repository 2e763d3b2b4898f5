"""Atomic installs into (and removals from) ``models_dir()``.

A model is built in a hidden temporary sibling (``.tmp-<name>+…``), a marker file
(``mlxcli.json``) is written last, everything is fsynced and the directory is renamed into
place. Only directories with the marker count as installed, so an interrupted pull leaves
nothing a later load picks up; leftovers are removed by the next pull. A per-name ``flock``
serialises concurrent pulls (and removals) of the same model. The temporary-name and lock
conventions are only known here.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import fcntl
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

MARKER = "mlxcli.json"


def read_marker(path: Path) -> dict[str, Any] | None:
    """The install marker of a model directory; None when absent or unreadable (incomplete)."""
    try:
        data = json.loads((path / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


@contextlib.contextmanager
def locked(models: Path, name: str, *, blocking: bool = True) -> Iterator[bool]:
    """Exclusive per-name lock (flock: released by the kernel if the process dies)."""
    models.mkdir(parents=True, exist_ok=True)
    with open(models / f".lock-{name}", "a+b") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def temp_dir(models: Path, name: str, purpose: str = "") -> Path:
    """A fresh hidden directory in ``models`` that belongs to ``name`` (removed when stale)."""
    return Path(tempfile.mkdtemp(prefix=f".tmp-{name}+{purpose}", dir=models))


@contextlib.contextmanager
def scratch_dir(models: Path, name: str, purpose: str) -> Iterator[Path]:
    """A working directory for building ``name`` (same filesystem as the install), removed after."""
    with tempfile.TemporaryDirectory(prefix=f".tmp-{name}+{purpose}", dir=models) as work:
        yield Path(work)


def _temp_owner(entry: str) -> str | None:
    """``.tmp-<name>+<suffix>`` -> name ('+' never occurs in a valid name)."""
    if not entry.startswith(".tmp-") or "+" not in entry:
        return None
    return entry[len(".tmp-"):].split("+", 1)[0]


def _clean_stale(models: Path, holding: str) -> None:
    """Remove temp dirs left by interrupted pulls: ours, and others' no one is working on."""
    for entry in os.listdir(models):
        owner = _temp_owner(entry)
        if owner is None:
            continue
        if owner == holding:
            shutil.rmtree(models / entry, ignore_errors=True)
            continue
        with locked(models, owner, blocking=False) as free:
            if free:
                shutil.rmtree(models / entry, ignore_errors=True)


def _fsync_tree(root: Path) -> None:
    for dirpath, _, files in os.walk(root):
        for f in files:
            fd = os.open(os.path.join(dirpath, f), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        _fsync_dir(Path(dirpath))


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError as e:  # some filesystems cannot fsync directories
        if e.errno not in (errno.EINVAL, errno.ENOTSUP):
            raise
    finally:
        os.close(fd)


def install(
    models: Path,
    name: str,
    build: Callable[[Path], dict[str, Any]],
    *,
    is_current: Callable[[], bool] | None = None,
) -> Path:
    """Build ``models/name`` atomically; a no-op if another process finished it meanwhile.

    ``build(tmp)`` writes the model into ``tmp`` and returns the marker's fields.
    """
    final = models / name
    current = is_current or (lambda: read_marker(final) is not None)
    with locked(models, name):
        if current():
            return final
        _clean_stale(models, name)
        tmp = temp_dir(models, name)
        tmp.chmod(0o755)  # mkdtemp makes it private; an installed model is an ordinary directory
        try:
            info = build(tmp)
            marker = {"format": 1, "name": name, **info,
                      "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
            (tmp / MARKER).write_text(json.dumps(marker, indent=1) + "\n", encoding="utf-8")
            _fsync_tree(tmp)
            if os.path.lexists(final):  # an outdated or incomplete install: move it aside first
                old = temp_dir(models, name, "old-")
                os.replace(final, old / "model")
            os.replace(tmp, final)
            _fsync_dir(models)
        finally:
            _clean_stale(models, name)
    return final


def uninstall(models: Path, name: str) -> bool:
    """Delete the directory ``models/name`` atomically; False when there is none."""
    target = models / name
    with locked(models, name):
        if not target.is_dir():
            return False
        trash = temp_dir(models, name, "rm-")
        os.replace(target, trash / "model")  # disappears atomically, then is deleted
        shutil.rmtree(trash, ignore_errors=True)
    return True

"""Durable file operations shared by the stores that write to disk (conversation archives, the prompt cache's disk tier)."""

from __future__ import annotations

import os
from pathlib import Path


def fsync_dir(path: Path) -> None:
    """Make a rename or unlink in ``path`` durable (best-effort where directories cannot be fsynced)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_durably(target: Path, data: bytes, temporary: Path) -> None:
    """``data`` at ``target``, whole or not at all: written to ``temporary`` (in the same directory),
    fsynced, renamed over ``target``, and the rename made durable. The temporary file never outlives a failure."""
    try:
        with open(temporary, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    fsync_dir(target.parent)

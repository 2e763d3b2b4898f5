"""How model management reports what it is doing.

Every stage (download, verify, extract, convert, ...) reports ``(stage, done, total)`` through
one callback type, so that ``mlxcli pull`` can draw one bar per stage without knowing which
module does the work. Hashing lives here because it is the one step several sources share
(a wheel is verified, a local GGUF is fingerprinted) and it reports as it reads.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

Progress = Callable[[str, int, "int | None"], None]


def no_progress(stage: str, done: int, total: int | None) -> None:
    pass


def sha256_file(path: Path, report: Progress, stage: str = "verify") -> str:
    total = path.stat().st_size
    digest, done = hashlib.sha256(), 0
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
            done += len(chunk)
            report(stage, done, total)
    return digest.hexdigest()

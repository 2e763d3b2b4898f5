"""Options that locate and bound the conversation store, shared by `serve` and `convo`."""

from __future__ import annotations

import re
from pathlib import Path

import typer

StorePathOption = typer.Option(
    None, "--store-path", envvar="MLXCLI_STORE_PATH",
    help="Conversation store database (default: DATA_DIR/conversations.db).",
)
ConversationDirOption = typer.Option(
    None, "--conversation-dir", envvar="MLXCLI_CONVERSATION_DIR",
    help="Where archived conversations are written (default: DATA_DIR/conversation_logs).",
)

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|sec|m|min|h|d)?\s*$", re.IGNORECASE)
_DURATION_UNITS = {None: 1, "s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "d": 86400}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$", re.IGNORECASE)
# Decimal (SI) prefixes are powers of 1000, binary (IEC) ones powers of 1024; case is not checked.
_SIZE_UNITS = {
    "": 1, "b": 1,
    "k": 10**3, "kb": 10**3, "m": 10**6, "mb": 10**6, "g": 10**9, "gb": 10**9, "t": 10**12, "tb": 10**12,
    "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40,
}
SIZE_HELP = "a number of bytes, or with a unit: 500MB = 500 x 10^6 bytes (kB, MB, GB, TB), 2GiB = 2 x 2^30 (KiB, MiB, GiB, TiB)"


def parse_duration(text: str) -> float:
    """``90``, ``90s``, ``30m``, ``1h``, ``2d`` → seconds."""
    match = _DURATION.match(text)
    if not match:
        raise typer.BadParameter(f"{text!r} is not a duration (examples: 90s, 30m, 1h, 2d, 0 for never)")
    unit = match.group(2).lower() if match.group(2) else None
    return float(match.group(1)) * _DURATION_UNITS[unit]


def parse_size(text: str) -> int:
    """``1000``, ``10B``, ``64kB``, ``500MB``, ``1.5G`` (powers of 1000), ``2GiB``, ``512MiB`` (powers of 1024) → bytes."""
    match = _SIZE.match(str(text))
    unit = match.group(2).lower() if match else None
    if unit not in _SIZE_UNITS:
        raise typer.BadParameter(f"{text!r} is not a size (examples: 0, 1000000, 10B, 500MB, 2GiB)")
    return int(float(match.group(1)) * _SIZE_UNITS[unit])


def size_option(value: str | None) -> str | None:
    """Typer callback: a size checked at parse time (the error names the option), kept as a byte count."""
    return None if value is None else str(parse_size(value))


def store_settings(
    store_path: Path | None,
    conversation_dir: Path | None,
    *,
    ttl: str | None = None,
    max_items: int | None = None,
    max_bytes: str | None = None,
):
    from mlxcli.store import StoreSettings

    return StoreSettings.default(
        path=store_path,
        archive_dir=conversation_dir,
        ttl_seconds=parse_duration(ttl) if ttl is not None else None,
        max_items=max_items,
        max_bytes=parse_size(max_bytes) if max_bytes is not None else None,
    )

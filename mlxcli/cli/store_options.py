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
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?i?b?)?\s*$", re.IGNORECASE)


def parse_duration(text: str) -> float:
    """``90``, ``90s``, ``30m``, ``1h``, ``2d`` → seconds."""
    match = _DURATION.match(text)
    if not match:
        raise typer.BadParameter(f"{text!r} is not a duration (examples: 90s, 30m, 1h, 2d, 0 for never)")
    unit = match.group(2).lower() if match.group(2) else None
    return float(match.group(1)) * _DURATION_UNITS[unit]


def parse_size(text: str) -> int:
    """``1000000``, ``500MB``, ``1GiB``, ``64k`` → bytes (K/M/G/T are powers of 1024)."""
    match = _SIZE.match(text)
    if not match:
        raise typer.BadParameter(f"{text!r} is not a size (examples: 50000000, 500MB, 2GiB)")
    prefix = (match.group(2) or "").lower()[:1]
    return int(float(match.group(1)) * 1024 ** " kmgt".index(prefix or " "))


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

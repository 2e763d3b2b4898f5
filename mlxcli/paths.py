"""Where mlxcli keeps its data: models, the conversation store, archives."""

from __future__ import annotations

import os
import sys
from pathlib import Path


def data_home() -> Path:
    """The user's mlxcli data directory (``MLXCLI_HOME`` overrides)."""
    override = os.environ.get("MLXCLI_HOME")
    if override:
        return Path(override).expanduser()
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support" / "mlxcli"
    xdg = os.environ.get("XDG_DATA_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".local" / "share"
    return base / "mlxcli"


def models_dir(home: Path | None = None) -> Path:
    return (home or data_home()) / "models"

"""Store settings: where the conversation store lives, how long conversations stay hot, its bounds."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mlxcli.paths import data_home

DB_NAME = "conversations.db"
ARCHIVE_DIR_NAME = "conversation_logs"


@dataclass
class StoreSettings:
    path: Path | None = None  # the SQLite file; None keeps everything in memory (nothing persisted)
    archive_dir: Path | None = None  # conversation_logs/; None turns archiving off
    ttl_seconds: float = 3600.0  # idle time before a conversation is archived; 0 = never by age
    max_items: int | None = None  # bound on the hot store's input + output items
    max_bytes: int | None = None  # bound on the hot store's stored JSON bytes
    archive_interval: float | None = None  # seconds between archiver passes (default: from the TTL)

    @classmethod
    def default(cls, home: Path | None = None, **overrides) -> "StoreSettings":
        """The store in the user's data directory (``MLXCLI_HOME`` overrides)."""
        home = home or data_home()
        values = {"path": home / DB_NAME, "archive_dir": home / ARCHIVE_DIR_NAME}
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    @property
    def interval(self) -> float:
        if self.archive_interval is not None:
            return self.archive_interval
        return min(60.0, max(1.0, self.ttl_seconds / 10)) if self.ttl_seconds > 0 else 60.0

"""conversation_logs/: one JSON file per archived conversation, written atomically.

A file is written to a hidden temporary name, fsynced, renamed over
``<conversation-id>.json`` and the directory fsynced, so a reader (or a crash)
sees the old file or the new one, never half of one. Temporary files left by a
crash are hidden from listings and removed by ``remove_temporaries``.
"""

from __future__ import annotations

import logging
import os
import re
import time
from pathlib import Path

import orjson

from mlxcli.files import fsync_dir, write_durably
from mlxcli.store.records import Conversation, conversation_from_json, conversation_json

log = logging.getLogger("mlxcli.store")

SAFE_ID = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
TEMP_PREFIX = ".tmp-"


class ArchiveDir:
    def __init__(self, path: Path):
        self.path = Path(path)

    def file(self, conversation_id: str) -> Path:
        if not SAFE_ID.match(conversation_id):
            raise ValueError(f"not a conversation id: {conversation_id!r}")
        return self.path / f"{conversation_id}.json"

    def ids(self) -> list[str]:
        """Ids of the archived conversations (complete files only)."""
        try:
            names = os.listdir(self.path)
        except FileNotFoundError:
            return []
        return sorted(n[:-5] for n in names if n.endswith(".json") and not n.startswith(".") and SAFE_ID.match(n[:-5]))

    def read(self, conversation_id: str) -> Conversation | None:
        """The archived conversation, or None if there is no archive for it."""
        try:
            raw = self.file(conversation_id).read_bytes()
        except (FileNotFoundError, ValueError):
            return None
        conversation = conversation_from_json(orjson.loads(raw))
        conversation.archived = True
        return conversation

    def write(self, conversation: Conversation) -> Path:
        """Durably write ``conversation``; returns its path. Never leaves a partial file under the final name."""
        target = self.file(conversation.id)
        self.path.mkdir(parents=True, exist_ok=True)
        data = orjson.dumps(conversation_json(conversation), option=orjson.OPT_INDENT_2)
        temp = self.path / f"{TEMP_PREFIX}{conversation.id}-{os.getpid()}-{time.monotonic_ns()}"
        write_durably(target, data, temp)
        return target

    def remove(self, conversation_id: str) -> None:
        self.file(conversation_id).unlink(missing_ok=True)
        fsync_dir(self.path)

    def remove_temporaries(self) -> int:
        """Delete temporaries a crashed writer left behind; returns how many.

        A live writer in another process whose temporary goes missing fails that
        one archive attempt and retries later: nothing is lost either way.
        """
        removed = 0
        try:
            entries = list(os.scandir(self.path))
        except FileNotFoundError:
            return 0
        for entry in entries:
            if entry.name.startswith(TEMP_PREFIX):
                try:
                    os.unlink(entry.path)
                    removed += 1
                except FileNotFoundError:
                    pass
        return removed

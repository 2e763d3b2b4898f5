"""The SQLite side of the conversation store: schema, opening, and transactions (one connection, a lock).

Writers in other processes serialize on SQLite's own lock (``BEGIN IMMEDIATE``), so several
servers may share one store; a consistent read is a snapshot (``BEGIN`` ... ``COMMIT``).
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from mlxcli.core.errors import MlxcliError
from mlxcli.store import items

log = logging.getLogger("mlxcli.store")

SCHEMA_VERSION = 2  # 2: the item index (items.py)
SCHEMA = """
CREATE TABLE IF NOT EXISTS conversations (
    id TEXT PRIMARY KEY,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,             -- when its last turn was recorded: idle time and LRU order
    turns INTEGER NOT NULL DEFAULT 0,
    items INTEGER NOT NULL DEFAULT 0,
    bytes INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS conversations_by_use ON conversations(updated_at);
CREATE TABLE IF NOT EXISTS turns (
    id TEXT PRIMARY KEY,
    conversation_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    items INTEGER NOT NULL,
    bytes INTEGER NOT NULL,
    data BLOB NOT NULL                    -- the turn's JSON (records.turn_json)
);
CREATE INDEX IF NOT EXISTS turns_by_conversation ON turns(conversation_id, seq);
CREATE TABLE IF NOT EXISTS archived (    -- which archive file holds a turn that left the hot store
    turn_id TEXT PRIMARY KEY,
    conversation_id TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS archived_by_conversation ON archived(conversation_id);
"""


class StoreFailure(MlxcliError):
    """The store could not keep something: the request fails rather than pretend it was stored."""

    status = 500
    kind = "server_error"


class Database:
    """The store's connection; ``None`` connection: read-only with no database file yet."""

    def __init__(self, path: Path | None, *, readonly: bool = False):
        self.path = path
        self.readonly = readonly
        self.lock = threading.RLock()
        self.db = self._connect()

    @property
    def open(self) -> bool:
        return self.db is not None

    def _connect(self) -> sqlite3.Connection | None:
        path = self.path
        if path is not None and self.readonly and not path.exists():
            return None  # nothing stored yet: an empty hot store
        try:
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(str(path) if path else ":memory:", isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA busy_timeout = 10000")
            if self.readonly:
                db.execute("PRAGMA query_only = 1")
                return db
            db.execute("PRAGMA journal_mode = WAL")
            db.execute("PRAGMA synchronous = FULL")  # an acknowledged turn survives power loss too
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise StoreFailure(f"the conversation store {path} was written by a newer mlxcli (schema {version})")
            db.executescript(SCHEMA + items.SCHEMA)
            if version < SCHEMA_VERSION:
                db.execute("BEGIN IMMEDIATE")
                items.backfill(db)
                db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                db.execute("COMMIT")
        except (sqlite3.Error, OSError) as exc:
            raise StoreFailure(f"cannot open the conversation store {path}: {exc}") from exc
        return db

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction: takes SQLite's write lock at once (other processes wait)."""
        if self.readonly or self.db is None:
            raise StoreFailure("the conversation store is closed or read-only")
        with self.lock:
            try:
                self.db.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise StoreFailure(f"the conversation store is unavailable: {exc}") from exc
            try:
                yield self.db
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
            try:
                self.db.execute("COMMIT")
            except sqlite3.Error as exc:
                self.db.execute("ROLLBACK")
                raise StoreFailure(f"the conversation store could not commit: {exc}") from exc

    @contextmanager
    def snapshot(self) -> Iterator[sqlite3.Connection | None]:
        """A consistent read (several SELECTs see one state, even with writers in other processes)."""
        with self.lock:
            if self.db is None:
                yield None
                return
            self.db.execute("BEGIN")
            try:
                yield self.db
            finally:
                self.db.execute("COMMIT")

    def close(self, before: Callable[[], None] | None = None) -> None:
        """Close the connection (idempotent); ``before`` runs first, under the lock, when writable."""
        with self.lock:
            if self.db is None:
                return
            if not self.readonly:
                if before is not None:
                    before()
                try:
                    self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                except sqlite3.Error:
                    log.exception("could not checkpoint the conversation store")
            self.db.close()
            self.db = None

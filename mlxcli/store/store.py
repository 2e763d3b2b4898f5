"""The conversation store: a hot SQLite store (WAL) plus JSON archives in conversation_logs/.

Every front end records turns here (``record``) and reads them back by turn or
conversation id, wherever they live. A background archiver moves conversations
idle past the TTL, or the least recently used ones beyond the size bounds, into
``conversation_logs/<conversation-id>.json``; continuing such a conversation
loads it back.

Crash safety, in one rule: *a hot conversation is authoritative; an archive
file counts only for a conversation that is not hot.* Archiving therefore holds
the SQLite write lock while it writes the file durably, and only then deletes
the rows in the same transaction: a crash before the commit leaves the rows
(and at worst a file they shadow), after it the file. Loading back inserts the
rows and keeps the file (it is shadowed, and overwritten when archived again),
so no step ever deletes the last copy of an acknowledged turn. Several servers
may share one store (database.py).
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from typing import Callable, Iterator

import orjson

from mlxcli.core.request import new_id as random_id
from mlxcli.store import items as item_index
from mlxcli.store.archive import ArchiveDir
from mlxcli.store.records import Conversation, ConversationSummary, Turn, summarize, turn_from_json, turn_json
from mlxcli.store.database import Database, StoreFailure
from mlxcli.store.settings import StoreSettings

log = logging.getLogger("mlxcli.store")


class ConversationStore:
    """Thread-safe; one SQLite connection guarded by a lock (one writer per process)."""

    def __init__(
        self,
        settings: StoreSettings | None = None,
        *,
        clock: Callable[[], float] = time.time,
        new_id: Callable[[str], str] = random_id,
        readonly: bool = False,
    ):
        self.settings = settings or StoreSettings()
        self._clock = clock
        self._new_id = new_id
        self._readonly = readonly
        self._archive = ArchiveDir(self.settings.archive_dir) if self.settings.archive_dir else None
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._database = Database(self.settings.path, readonly=readonly)
        self._lock = self._database.lock
        if self._database.open and not readonly:
            self._reconcile()

    @classmethod
    def memory(cls, **kwargs) -> "ConversationStore":
        """A store that keeps nothing on disk (tests, or a server run with no store)."""
        return cls(StoreSettings(), **kwargs)

    # ---- opening -----------------------------------------------------------

    def _reconcile(self) -> None:
        """After a crash: drop half-written temporaries; index archives the index does not know."""
        if self._archive is None:
            return
        removed = self._archive.remove_temporaries()
        if removed:
            log.info("removed %d unfinished archive file(s) in %s", removed, self._archive.path)
        with self._database.transaction() as db:
            known = {r[0] for r in db.execute("SELECT DISTINCT conversation_id FROM archived")}
            known |= {r[0] for r in db.execute("SELECT id FROM conversations")}
            for conversation_id in self._archive.ids():
                if conversation_id in known:
                    continue
                conversation = self._read_archive(conversation_id)
                if conversation is not None:
                    db.executemany(
                        "INSERT OR REPLACE INTO archived(turn_id, conversation_id) VALUES (?, ?)",
                        [(t.id, conversation_id) for t in conversation.turns],
                    )

    # ---- writing -------------------------------------------------------------

    def record(self, turn: Turn) -> Turn:
        """Store a finished turn; returns it with ``conversation_id`` set.

        A turn continuing an archived conversation loads that conversation back
        into the hot store. When this returns the turn is durable.
        """
        try:
            with self._database.transaction() as db:
                conversation_id = None
                if turn.previous_id:
                    conversation_id = self._hot_conversation_of(db, turn.previous_id) or self._load_back(
                        db, turn.previous_id
                    )
                now = self._clock()
                if conversation_id is None:
                    conversation_id = self._new_id("conv_")
                    db.execute(
                        "INSERT INTO conversations(id, created_at, updated_at) VALUES (?, ?, ?)",
                        (conversation_id, now, now),
                    )
                turn.conversation_id = conversation_id
                data = orjson.dumps(turn_json(turn))
                (seq,) = db.execute(
                    "SELECT COALESCE(MAX(seq), 0) + 1 FROM turns WHERE conversation_id = ?", (conversation_id,)
                ).fetchone()
                db.execute(
                    "INSERT INTO turns(id, conversation_id, seq, items, bytes, data) VALUES (?, ?, ?, ?, ?, ?)",
                    (turn.id, conversation_id, seq, turn.items, len(data), data),
                )
                item_index.index(db, turn_json(turn))
                db.execute(
                    "UPDATE conversations SET updated_at = ?, turns = turns + 1, items = items + ?, bytes = bytes + ? "
                    "WHERE id = ?",
                    (now, turn.items, len(data), conversation_id),
                )
        except (sqlite3.Error, OSError, ValueError, TypeError) as exc:
            raise StoreFailure(f"could not store {turn.id}: {exc}") from exc
        if self._over_bounds():
            self._wake.set()
        return turn

    def delete(self, turn_id: str) -> bool:
        """Delete one turn (wherever it lives); False if there is no such turn."""
        with self._database.transaction() as db:
            conversation_id = self._hot_conversation_of(db, turn_id) or self._load_back(db, turn_id)
            if conversation_id is None:
                return False
            items, size, data = db.execute("SELECT items, bytes, data FROM turns WHERE id = ?", (turn_id,)).fetchone()
            db.execute("DELETE FROM turns WHERE id = ?", (turn_id,))
            item_index.unindex(db, [turn_id])
            self._relink_children(db, conversation_id, turn_id, turn_from_json(orjson.loads(data)).previous_id)
            db.execute(
                "UPDATE conversations SET turns = turns - 1, items = items - ?, bytes = bytes - ? WHERE id = ?",
                (items, size, conversation_id),
            )
            (left,) = db.execute("SELECT turns FROM conversations WHERE id = ?", (conversation_id,)).fetchone()
            if left == 0:
                db.execute("DELETE FROM conversations WHERE id = ?", (conversation_id,))
                if self._archive is not None:  # its (shadowed) archive must not bring it back
                    self._archive.remove(conversation_id)
        return True

    def _relink_children(self, db: sqlite3.Connection, conversation_id: str, removed: str, parent: str | None) -> None:
        """Turns that continued a deleted turn now continue its parent: the rest of their history stays."""
        rows = db.execute("SELECT id, data FROM turns WHERE conversation_id = ?", (conversation_id,)).fetchall()
        for child_id, data in rows:
            child = turn_from_json(orjson.loads(data))
            if child.previous_id == removed:
                child.previous_id = parent
                new = orjson.dumps(turn_json(child))
                db.execute("UPDATE turns SET data = ?, bytes = ? WHERE id = ?", (new, len(new), child_id))
                db.execute(
                    "UPDATE conversations SET bytes = bytes + ? WHERE id = ?", (len(new) - len(data), conversation_id)
                )

    def _hot_conversation_of(self, db: sqlite3.Connection, turn_id: str) -> str | None:
        row = db.execute("SELECT conversation_id FROM turns WHERE id = ?", (turn_id,)).fetchone()
        return row[0] if row else None

    def _load_back(self, db: sqlite3.Connection, turn_id: str) -> str | None:
        """Bring the archived conversation holding ``turn_id`` back into the hot store (inside a transaction)."""
        row = db.execute("SELECT conversation_id FROM archived WHERE turn_id = ?", (turn_id,)).fetchone()
        if row is None:
            return None
        if db.execute("SELECT 1 FROM conversations WHERE id = ?", (row[0],)).fetchone():
            return row[0]  # already hot (a stale index row)
        conversation = self._read_archive(row[0])
        if conversation is None or conversation.turn(turn_id) is None:
            return None  # the file was removed by hand
        db.execute(
            "INSERT INTO conversations(id, created_at, updated_at) VALUES (?, ?, ?)",
            (conversation.id, conversation.created_at, conversation.updated_at),
        )
        for seq, turn in enumerate(conversation.turns, 1):
            turn.conversation_id = conversation.id
            data = orjson.dumps(turn_json(turn))
            db.execute(
                "INSERT INTO turns(id, conversation_id, seq, items, bytes, data) VALUES (?, ?, ?, ?, ?, ?)",
                (turn.id, conversation.id, seq, turn.items, len(data), data),
            )
            db.execute(
                "UPDATE conversations SET turns = turns + 1, items = items + ?, bytes = bytes + ? WHERE id = ?",
                (turn.items, len(data), conversation.id),
            )
        db.execute("DELETE FROM archived WHERE conversation_id = ?", (conversation.id,))
        log.info("loaded conversation %s back from its archive", conversation.id)
        return conversation.id

    # ---- reading -------------------------------------------------------------

    def get(self, turn_id: str) -> Turn | None:
        with self._database.snapshot() as db:
            row = db.execute("SELECT data FROM turns WHERE id = ?", (turn_id,)).fetchone() if db else None
        if row is not None:
            return turn_from_json(orjson.loads(row[0]))
        conversation = self.conversation(turn_id)
        return conversation.turn(turn_id) if conversation else None

    def turn_with_item(self, item_id: str) -> Turn | None:
        """The turn holding an input or output item (a Responses item id), wherever it lives."""
        return self.get(turn_id) if (turn_id := item_index.turn_of(self._database.snapshot, item_id)) else None

    def history(self, turn_id: str) -> list[Turn] | None:
        """The turns leading up to and including ``turn_id`` (oldest first), or None if unknown."""
        conversation = self.conversation(turn_id)
        if conversation is None or conversation.turn(turn_id) is None:
            return None
        return conversation.chain(turn_id)

    def conversation(self, id: str) -> Conversation | None:
        """A conversation by its id or by the id of one of its turns, hot or archived."""
        if not self._database.open:  # read-only with no database yet: the archives are all there is
            return self._read_archive(id) or self._find_in_archives(id)
        for _ in range(2):  # a second look covers a conversation loaded back while we read its file
            with self._database.snapshot() as db:
                row = db.execute("SELECT conversation_id FROM turns WHERE id = ?", (id,)).fetchone()
                hot = self._hot_conversation(db, row[0] if row else id)
                if hot is not None:
                    return hot
                row = db.execute("SELECT conversation_id FROM archived WHERE turn_id = ?", (id,)).fetchone()
            archived = self._read_archive(row[0] if row else id)
            if archived is not None or row is None:
                return archived
        return None

    def conversations(self) -> list[ConversationSummary]:
        """A summary of every conversation, hot and archived, most recently used first."""
        return sorted((summarize(c) for c in self._each_conversation()), key=lambda s: s.updated_at, reverse=True)

    def all_conversations(self) -> list[Conversation]:
        """Every conversation, hot and archived, most recently used first."""
        return sorted(self._each_conversation(), key=lambda c: c.updated_at, reverse=True)

    def _each_conversation(self) -> Iterator[Conversation]:
        for conversation_id in self._conversation_ids():
            conversation = self.conversation(conversation_id)
            if conversation is not None:
                yield conversation

    def _conversation_ids(self) -> set[str]:
        # Archives are listed before and after the hot store so that a conversation
        # moving either way in between is still seen once.
        ids = set(self._archive.ids()) if self._archive else set()
        with self._database.snapshot() as db:
            if db is not None:
                ids |= {r[0] for r in db.execute("SELECT id FROM conversations")}
        if self._archive:
            ids |= set(self._archive.ids())
        return ids

    def _hot_conversation(self, db: sqlite3.Connection, conversation_id: str) -> Conversation | None:
        row = db.execute("SELECT created_at, updated_at FROM conversations WHERE id = ?", (conversation_id,)).fetchone()
        if row is None:
            return None
        turns = [
            turn_from_json(orjson.loads(data))
            for (data,) in db.execute("SELECT data FROM turns WHERE conversation_id = ? ORDER BY seq", (conversation_id,))
        ]
        return Conversation(id=conversation_id, created_at=row[0], updated_at=row[1], turns=turns)

    def _read_archive(self, conversation_id: str) -> Conversation | None:
        if self._archive is None:
            return None
        try:
            return self._archive.read(conversation_id)
        except (ValueError, KeyError, TypeError) as exc:  # not ours, or edited by hand
            log.warning("ignoring unreadable archive %s: %s", self._archive.file(conversation_id), exc)
            return None

    def _find_in_archives(self, turn_id: str) -> Conversation | None:
        if self._archive is None:
            return None
        for conversation_id in self._archive.ids():
            conversation = self._read_archive(conversation_id)
            if conversation is not None and conversation.turn(turn_id) is not None:
                return conversation
        return None

    # ---- archiving -----------------------------------------------------------

    def archive_due(self) -> list[str]:
        """Archive conversations idle past the TTL, then LRU ones while over the bounds; returns their ids."""
        if self._archive is None or not self._database.open or self._readonly:
            return []
        archived = []
        ttl = self.settings.ttl_seconds
        if ttl and ttl > 0:
            cutoff = self._clock() - ttl
            with self._database.snapshot() as db:
                due = [r[0] for r in db.execute("SELECT id FROM conversations WHERE updated_at <= ? ORDER BY updated_at", (cutoff,))]
            archived += [c for c in due if self._archive_one(c, idle_before=cutoff)]
        while self._over_bounds():
            with self._database.snapshot() as db:
                oldest = [r[0] for r in db.execute("SELECT id FROM conversations ORDER BY updated_at LIMIT 2")]
            if len(oldest) < 2:
                break  # never archive the conversation in use right now
            if self._archive_one(oldest[0]):
                archived.append(oldest[0])
        return archived

    def archive(self, conversation_id: str) -> bool:
        """Archive one conversation now (whatever its age)."""
        return self._archive is not None and self._archive_one(conversation_id)

    def _archive_one(self, conversation_id: str, idle_before: float | None = None) -> bool:
        assert self._archive is not None
        try:
            with self._database.transaction() as db:
                conversation = self._hot_conversation(db, conversation_id)
                if conversation is None:
                    return False
                if idle_before is not None and conversation.updated_at > idle_before:
                    return False  # used again since we looked
                self._archive.write(conversation)  # durable before the rows go
                db.executemany(
                    "INSERT OR REPLACE INTO archived(turn_id, conversation_id) VALUES (?, ?)",
                    [(t.id, conversation_id) for t in conversation.turns],
                )
                db.execute("DELETE FROM turns WHERE conversation_id = ?", (conversation_id,))
                db.execute("DELETE FROM conversations WHERE id = ?", (conversation_id,))
        except (OSError, sqlite3.Error, StoreFailure) as exc:
            log.warning("could not archive conversation %s (will retry): %s", conversation_id, exc)
            return False
        log.info("archived conversation %s (%d turns)", conversation_id, len(conversation.turns))
        return True

    def totals(self) -> tuple[int, int, int]:
        """(conversations, items, bytes) in the hot store."""
        with self._database.snapshot() as db:
            if db is None:
                return 0, 0, 0
            count, items, size = db.execute(
                "SELECT COUNT(*), COALESCE(SUM(items), 0), COALESCE(SUM(bytes), 0) FROM conversations"
            ).fetchone()
        return count, items, size

    def _over_bounds(self) -> bool:
        s = self.settings
        if self._archive is None or (s.max_items is None and s.max_bytes is None):
            return False
        _, items, size = self.totals()
        return (s.max_items is not None and items > s.max_items) or (s.max_bytes is not None and size > s.max_bytes)

    # ---- the background archiver and shutdown --------------------------------

    def start(self) -> "ConversationStore":
        """Start the background archiver (a no-op without an archive directory)."""
        if self._archive is None or self._readonly or self._thread is not None:
            return self
        s = self.settings
        log.info(
            "conversation store %s; idle conversations archived to %s after %s",
            s.path or "in memory", s.archive_dir, f"{s.ttl_seconds:g}s" if s.ttl_seconds > 0 else "never",
        )
        self._thread = threading.Thread(target=self._archiver, name="mlxcli-archiver", daemon=True)
        self._thread.start()
        return self

    def _archiver(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.settings.interval)
            self._wake.clear()
            if self._stop.is_set():
                break
            try:
                self.archive_due()
            except Exception:  # keep archiving later; never take the server down
                log.exception("archiver pass failed")

    def close(self) -> None:
        """Stop the archiver, run a last archiving pass, and close the database. Idempotent."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None
        def last_pass() -> None:
            try:
                self.archive_due()
            except Exception:
                log.exception("final archiving pass failed")

        self._database.close(before=last_pass)

    def __enter__(self) -> "ConversationStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

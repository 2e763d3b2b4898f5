"""Which turn holds an item: the index behind Responses' ``item_reference`` input items.

Every id a turn is known to hold — its input and output messages, and the items of the response
object it returned (a call's ``fc_…`` id lives only there) — maps to the turn. Rows outlive
archiving (the turn is still found, in its archive) and go with the turn when it is deleted.
"""

from __future__ import annotations

import sqlite3
from typing import Any, Callable, ContextManager, Iterable

import orjson

SCHEMA = """
CREATE TABLE IF NOT EXISTS items (
    id TEXT PRIMARY KEY,
    turn_id TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS items_by_turn ON items(turn_id);
"""


def ids(turn: dict[str, Any]) -> set[str]:
    """The item ids in a turn's JSON (records.turn_json)."""
    found = {m["id"] for m in turn.get("input", []) + turn.get("output", []) if m.get("id")}
    found |= {i["id"] for i in (turn.get("response") or {}).get("output", []) if i.get("id")}
    return found


def index(db: sqlite3.Connection, turn: dict[str, Any]) -> None:
    db.executemany("INSERT OR REPLACE INTO items(id, turn_id) VALUES (?, ?)", [(i, turn["id"]) for i in ids(turn)])


def unindex(db: sqlite3.Connection, turn_ids: Iterable[str]) -> None:
    db.executemany("DELETE FROM items WHERE turn_id = ?", [(t,) for t in turn_ids])


def turn_of(snapshot: Callable[[], ContextManager[sqlite3.Connection | None]], item_id: str) -> str | None:
    """The turn holding ``item_id``, read in a ``snapshot()`` of the store (``Database.snapshot``)."""
    with snapshot() as db:
        row = db.execute("SELECT turn_id FROM items WHERE id = ?", (item_id,)).fetchone() if db else None
    return row[0] if row else None


def backfill(db: sqlite3.Connection) -> None:
    """Index the turns a store written before this index holds (the hot ones: archived turns stay unindexed)."""
    for (data,) in db.execute("SELECT data FROM turns").fetchall():
        index(db, orjson.loads(data))

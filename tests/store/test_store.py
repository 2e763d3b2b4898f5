"""The conversation store on its own: chains, restarts, TTL and LRU archiving, loading back, crash leftovers."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest

from mlxcli.core.events import Usage
from mlxcli.store import ConversationStore, StoredMessage, StoreFailure, StoreSettings, Turn
from mlxcli.store.archive import ArchiveDir
from mlxcli.store.records import conversation_from_json
from tests.support.http import wait_for


class Clock:
    def __init__(self, t: float = 1_000_000.0):
        self.t = t

    def __call__(self) -> float:
        return self.t


def turn(id: str, text: str = "hello", previous: str | None = None, size: int = 0) -> Turn:
    return Turn(
        id=id,
        source="responses",
        model="m",
        input=[StoredMessage(role="user", content=text + "x" * size)],
        output=[StoredMessage(role="assistant", content=f"answer to {text}")],
        usage=Usage(prompt_tokens=3, completion_tokens=4),
        previous_id=previous,
        created_at=1.0,
    )


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def settings(tmp_path):
    return StoreSettings.default(tmp_path, ttl_seconds=3600)


@pytest.fixture
def store(settings, clock):
    s = ConversationStore(settings, clock=clock)
    yield s
    s.close()


def archive_files(settings: StoreSettings) -> list[Path]:
    return sorted(settings.archive_dir.glob("*.json"))


def test_turns_chain_into_conversations(store):
    a = store.record(turn("resp_a", "first"))
    b = store.record(turn("resp_b", "second", previous="resp_a"))
    c = store.record(turn("resp_c", "branch", previous="resp_a"))  # a second answer to the same turn
    other = store.record(turn("resp_x", "unrelated"))
    assert a.conversation_id == b.conversation_id == c.conversation_id != other.conversation_id
    assert [t.id for t in store.history("resp_b")] == ["resp_a", "resp_b"]
    assert [t.id for t in store.history("resp_c")] == ["resp_a", "resp_c"]
    assert store.history("resp_missing") is None
    got = store.get("resp_b")
    assert got.input[0].content == "second" and got.output[0].content == "answer to second"
    assert got.usage.prompt_tokens == 3 and got.previous_id == "resp_a"
    summaries = {s.id: s for s in store.conversations()}
    assert summaries[a.conversation_id].turns == 3 and summaries[a.conversation_id].title == "first"
    assert store.conversation("resp_b").id == a.conversation_id == store.conversation(a.conversation_id).id


def test_a_reopened_store_keeps_everything(settings, clock):
    with ConversationStore(settings, clock=clock) as first:
        first.record(turn("resp_1", "one"))
        first.record(turn("resp_2", "two", previous="resp_1"))
    with ConversationStore(settings, clock=clock) as again:
        again.record(turn("resp_3", "three", previous="resp_2"))
        assert [t.id for t in again.history("resp_3")] == ["resp_1", "resp_2", "resp_3"]


def test_delete(store):
    store.record(turn("resp_1"))
    store.record(turn("resp_2", previous="resp_1"))
    assert store.delete("resp_2") and not store.delete("resp_2")
    assert store.get("resp_2") is None and store.get("resp_1") is not None
    assert store.totals() == (1, 2, store.totals()[2])
    assert store.delete("resp_1")
    assert store.conversations() == [] and store.totals() == (0, 0, 0)


def test_deleting_a_turn_keeps_the_rest_of_later_turns_history(store):
    store.record(turn("resp_1", "one"))
    store.record(turn("resp_2", "two", previous="resp_1"))
    store.record(turn("resp_3", "three", previous="resp_2"))
    store.record(turn("resp_3b", "branch", previous="resp_2"))
    assert store.delete("resp_2")
    assert [t.id for t in store.history("resp_3")] == ["resp_1", "resp_3"]
    assert [t.id for t in store.history("resp_3b")] == ["resp_1", "resp_3b"]
    assert store.delete("resp_1")
    assert [t.id for t in store.history("resp_3")] == ["resp_3"]
    _, items, size = store.totals()
    assert items == 4
    with store._database.snapshot() as db:  # the conversation's counters match its rows
        assert db.execute("SELECT SUM(bytes), SUM(items) FROM turns").fetchone() == (size, items)


def test_ttl_archives_idle_conversations_and_continuing_loads_them_back(store, settings, clock):
    old = store.record(turn("resp_old1", "old"))
    store.record(turn("resp_old2", "older", previous="resp_old1"))
    clock.t += 3000
    store.record(turn("resp_new", "new"))
    clock.t += 700  # the old conversation is idle for 3700 s, the new one for 700 s

    assert store.archive_due() == [old.conversation_id]
    [path] = archive_files(settings)
    assert path.name == f"{old.conversation_id}.json"
    archived = conversation_from_json(json.loads(path.read_text()))
    assert [t.id for t in archived.turns] == ["resp_old1", "resp_old2"]
    assert store.totals()[0] == 1  # only the new conversation is hot

    # still readable from the archive
    assert store.get("resp_old2").output[0].content == "answer to older"
    assert [t.id for t in store.history("resp_old2")] == ["resp_old1", "resp_old2"]
    where = {s.id: s.archived for s in store.conversations()}
    assert where == {old.conversation_id: True, store.get("resp_new").conversation_id: False}

    # continuing loads it back into the hot store, in the same conversation
    continued = store.record(turn("resp_old3", "again", previous="resp_old2"))
    assert continued.conversation_id == old.conversation_id
    assert [t.id for t in store.history("resp_old3")] == ["resp_old1", "resp_old2", "resp_old3"]
    assert not store.conversation(old.conversation_id).archived
    assert len(store.conversations()) == 2  # the shadowed archive file does not count twice

    clock.t += 4000
    assert set(store.archive_due()) == {old.conversation_id, store.get("resp_new").conversation_id}
    rewritten = conversation_from_json(json.loads(Path(settings.archive_dir, f"{old.conversation_id}.json").read_text()))
    assert [t.id for t in rewritten.turns] == ["resp_old1", "resp_old2", "resp_old3"]


def test_ttl_zero_never_archives(tmp_path, clock):
    with ConversationStore(StoreSettings.default(tmp_path, ttl_seconds=0), clock=clock) as store:
        store.record(turn("resp_1"))
        clock.t += 10**9
        assert store.archive_due() == []


def test_item_bound_archives_least_recently_used_never_drops(tmp_path, clock):
    settings = StoreSettings.default(tmp_path, max_items=6)
    with ConversationStore(settings, clock=clock) as store:
        ids = []
        for n in range(5):  # five conversations of 2 items each, used in this order
            clock.t += 1
            store.record(turn(f"resp_{n}", f"conversation {n}"))
            ids.append(store.get(f"resp_{n}").conversation_id)
        clock.t += 1
        store.record(turn("resp_0b", "back to the first", previous="resp_0"))  # conversation 0 is now the freshest
        archived = store.archive_due()
        assert archived == [ids[1], ids[2], ids[3]]  # least recently used first, until 6 items remain
        assert store.totals()[1] == 6
        for n in range(5):
            assert store.get(f"resp_{n}") is not None  # nothing dropped
        assert len(store.conversations()) == 5


def test_bound_never_archives_the_conversation_in_use(tmp_path, clock):
    with ConversationStore(StoreSettings.default(tmp_path, max_items=1), clock=clock) as store:
        store.record(turn("resp_1"))
        clock.t += 1
        store.record(turn("resp_2"))
        store.archive_due()
        assert store.totals()[0] == 1 and store.get("resp_2").conversation_id == store.conversations()[0].id


def test_byte_bound(tmp_path, clock):
    with ConversationStore(StoreSettings.default(tmp_path, max_bytes=20_000), clock=clock) as store:
        for n in range(6):
            clock.t += 1
            store.record(turn(f"resp_{n}", size=6_000))
        store.archive_due()
        assert store.totals()[2] <= 20_000 and store.totals()[0] >= 1
        assert all(store.get(f"resp_{n}") for n in range(6))


def test_background_archiver(tmp_path, clock):
    settings = StoreSettings.default(tmp_path, ttl_seconds=60, max_items=2, archive_interval=0.05)
    with ConversationStore(settings, clock=clock).start() as store:
        store.record(turn("resp_1"))
        clock.t += 1
        store.record(turn("resp_2"))  # over the bound: the archiver is woken
        assert wait_for(lambda: len(archive_files(settings)) == 1)
        clock.t += 120  # both idle past the TTL now
        assert wait_for(lambda: len(archive_files(settings)) == 2)
        assert store.totals() == (0, 0, 0)


def test_close_runs_a_last_archiving_pass(tmp_path, clock):
    settings = StoreSettings.default(tmp_path, ttl_seconds=60, archive_interval=3600)
    store = ConversationStore(settings, clock=clock).start()
    store.record(turn("resp_1"))
    clock.t += 61
    store.close()
    store.close()  # idempotent
    assert len(archive_files(settings)) == 1


def test_crash_leftovers_are_reconciled(settings, clock, caplog):
    with ConversationStore(settings, clock=clock) as store:
        store.record(turn("resp_1", "kept"))
        store.record(turn("resp_2", previous="resp_1"))
        conversation = store.conversation("resp_1")
    # A crash after the archive file was written but before the rows were deleted,
    # a crash half-way through writing another archive, and a stray non-archive file:
    archive = ArchiveDir(settings.archive_dir)
    archive.write(conversation)
    (settings.archive_dir / ".tmp-conv_half-1-2").write_text('{"format": "mlxcli.conv')
    (settings.archive_dir / "conv_notes.json").write_text("not json at all")
    with caplog.at_level(logging.WARNING), ConversationStore(settings, clock=clock) as store:
        assert not list(settings.archive_dir.glob(".tmp-*"))
        [summary] = store.conversations()  # hot wins; the garbage file is skipped
        assert summary.id == conversation.id and not summary.archived and summary.turns == 2
        store.record(turn("resp_3", previous="resp_2"))
        clock.t += 7200
        assert store.archive_due() == [conversation.id]
        assert [t.id for t in store.history("resp_3")] == ["resp_1", "resp_2", "resp_3"]
    assert "conv_notes.json" in caplog.text


@pytest.mark.parametrize("step", ["fsync", "replace"])
def test_a_failed_archive_write_leaves_the_conversation_hot(store, settings, monkeypatch, step):
    store.record(turn("resp_1"))
    conversation_id = store.get("resp_1").conversation_id

    def broken(*_args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, step, broken)
    assert store.archive(conversation_id) is False
    monkeypatch.undo()
    assert list(settings.archive_dir.iterdir()) == []  # neither a partial archive nor a temporary
    assert store.totals()[0] == 1 and store.get("resp_1") is not None
    assert store.archive(conversation_id) is True  # and it succeeds once the disk is fine


def test_archives_without_index_are_found(tmp_path, clock):
    """Archive files copied in from elsewhere (or an index lost) are indexed at start-up."""
    source = StoreSettings.default(tmp_path / "a")
    with ConversationStore(source, clock=clock) as store:
        store.record(turn("resp_1"))
        conversation_id = store.get("resp_1").conversation_id
        assert store.archive(conversation_id)
    target = StoreSettings.default(tmp_path / "b")
    target.archive_dir.mkdir(parents=True)
    (target.archive_dir / f"{conversation_id}.json").write_bytes((source.archive_dir / f"{conversation_id}.json").read_bytes())
    with ConversationStore(target, clock=clock) as store:
        store.record(turn("resp_2", previous="resp_1"))
        assert store.get("resp_2").conversation_id == conversation_id


def test_deleting_every_turn_of_a_loaded_back_conversation_does_not_resurrect_it(settings, clock):
    with ConversationStore(settings, clock=clock) as store:
        store.record(turn("resp_1"))
        store.record(turn("resp_2", previous="resp_1"))
        store.archive(store.get("resp_1").conversation_id)
        assert store.delete("resp_1") and store.delete("resp_2")  # loaded back, then deleted
    with ConversationStore(settings, clock=clock) as store:
        assert store.conversations() == [] and store.get("resp_1") is None
    assert archive_files(settings) == []


def test_readonly_view(settings, clock):
    with ConversationStore(settings, readonly=True) as empty:
        assert empty.conversations() == []  # no database yet: nothing, and nothing created
    assert not settings.path.exists()
    with ConversationStore(settings, clock=clock) as writer:
        writer.record(turn("resp_hot"))
        writer.record(turn("resp_cold"))
        writer.archive(writer.get("resp_cold").conversation_id)
        with ConversationStore(settings, readonly=True) as reader:  # while the writer is open
            assert {s.archived for s in reader.conversations()} == {True, False}
            assert reader.get("resp_cold").output[0].content == "answer to hello"
            with pytest.raises(StoreFailure):
                reader.record(turn("resp_new"))


def test_two_stores_on_one_database(settings, clock):
    """Two servers may share a store: one archives what the other wrote; either continues it."""
    with ConversationStore(settings, clock=clock) as one, ConversationStore(settings, clock=clock) as two:
        one.record(turn("resp_1"))
        clock.t += 7200
        assert two.archive_due() == [one.get("resp_1").conversation_id]
        one.record(turn("resp_2", previous="resp_1"))
        assert [t.id for t in two.history("resp_2")] == ["resp_1", "resp_2"]


def test_unopenable_store_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(StoreFailure, match="cannot open the conversation store"):
        ConversationStore(StoreSettings(path=blocker / "conversations.db"))


def test_archive_format(store, settings, clock):
    store.record(turn("resp_1", "hi"))
    conversation_id = store.get("resp_1").conversation_id
    store.archive(conversation_id)
    doc = json.loads(Path(settings.archive_dir, f"{conversation_id}.json").read_text())
    assert doc["format"] == "mlxcli.conversation" and doc["version"] == 1 and doc["id"] == conversation_id
    assert set(doc) == {"format", "version", "id", "created_at", "updated_at", "turns"}
    [t] = doc["turns"]
    assert set(t) == {"id", "conversation_id", "previous_id", "source", "model", "status", "created_at", "completed_at",
                      "instructions", "input", "output", "usage", "metadata", "response"}
    assert t["usage"] == {"input_tokens": 3, "output_tokens": 4, "cached_tokens": 0, "reasoning_tokens": 0}
    assert set(t["input"][0]) == {"id", "role", "content", "reasoning", "tool_calls", "tool_call_id", "name"}



def test_items_are_found_by_id_hot_archived_and_not_once_deleted(store, settings, clock):
    first = store.record(turn("resp_1", "one"))
    item = first.input[0].id
    assert store.turn_with_item(item).id == "resp_1" and store.turn_with_item("msg_none") is None
    assert store.archive(first.conversation_id)
    assert store.turn_with_item(item).id == "resp_1"  # from its archive
    assert store.delete("resp_1")
    assert store.turn_with_item(item) is None


def test_a_store_from_before_the_item_index_is_indexed_when_opened(settings, clock):
    import sqlite3

    with ConversationStore(settings, clock=clock) as old:
        item = old.record(turn("resp_1", "one")).output[0].id
    db = sqlite3.connect(settings.path)
    db.executescript("DROP TABLE items; PRAGMA user_version = 1;")
    db.close()
    with ConversationStore(settings, clock=clock) as again:
        assert again.turn_with_item(item).id == "resp_1"

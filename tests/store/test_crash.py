"""SIGKILL a process in the middle of recording and archiving, again and again: every archive on disk
must be complete, and every acknowledged turn must still be there (hot or archived) with its chain."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mlxcli.store import ConversationStore, StoreSettings
from mlxcli.store.records import conversation_from_json

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow  # store writers killed in a loop, in subprocesses
RUNS = 10


def test_sigkill_while_archiving_loses_nothing(tmp_path):
    db, archive_dir = tmp_path / "conversations.db", tmp_path / "conversation_logs"
    acked: dict[str, tuple[str | None, str]] = {}  # turn id → (previous id, text)
    rng = random.Random(20240611)
    interrupted_writes = 0
    for run in range(RUNS):
        worker = subprocess.Popen(
            [sys.executable, "-m", "tests.support.store_worker", str(db), str(archive_dir), str(run), str(run)],
            cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        worker.stdin.write("".join(f"ack {turn_id}\n" for turn_id in acked))
        worker.stdin.close()
        wanted = rng.randint(3, 40)
        for _ in range(wanted):
            line = worker.stdout.readline()
            assert line, f"the worker died on its own:\n{worker.stderr.read()}"
            record_ack(acked, line)
        time.sleep(rng.random() * 0.03)  # land anywhere: mid-record, mid-archive, mid-fsync
        worker.send_signal(signal.SIGKILL)
        worker.wait()
        for line in worker.stdout.read().splitlines(keepends=True):
            if line.endswith("\n"):  # a complete line was written before the kill: acknowledged
                record_ack(acked, line)
        worker.stdout.close()
        worker.stderr.close()
        interrupted_writes += len(list(archive_dir.glob(".tmp-*")))
        check_archives(archive_dir)
        check_everything_acknowledged_is_there(db, archive_dir, acked)

    assert len(acked) >= RUNS * 3
    assert list(archive_dir.glob("*.json")), "the workers never archived anything"
    print(f"{RUNS} kills, {len(acked)} acknowledged turns, {interrupted_writes} archive writes cut short")


def record_ack(acked: dict, line: str) -> None:
    _, turn_id, previous, text = line.split()
    acked[turn_id] = (None if previous == "-" else previous, text)


def check_archives(archive_dir: Path) -> None:
    for path in archive_dir.glob("*.json"):
        conversation = conversation_from_json(json.loads(path.read_bytes()))  # complete and parseable
        assert conversation.id == path.stem and conversation.turns
        assert all(t.conversation_id == conversation.id for t in conversation.turns)


def check_everything_acknowledged_is_there(db: Path, archive_dir: Path, acked: dict) -> None:
    settings = StoreSettings(path=db, archive_dir=archive_dir, ttl_seconds=0)
    with ConversationStore(settings) as store:  # opening reconciles what the crash left
        assert not list(archive_dir.glob(".tmp-*"))
        for turn_id, (previous, text) in acked.items():
            turn = store.get(turn_id)
            assert turn is not None, f"acknowledged turn {turn_id} is lost"
            assert turn.input[0].content.startswith(text + " ")
            chain = [t.id for t in store.history(turn_id)]
            assert chain[-1] == turn_id
            if previous is not None:
                assert chain[-2] == previous, f"{turn_id} lost its link to {previous}"

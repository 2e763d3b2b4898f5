"""Store throughput: record N turns (each continuing the previous one), then archive and load back.

    .venv/bin/python scripts/bench_store.py [N]
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from mlxcli.core.events import Usage
from mlxcli.store import ConversationStore, StoredMessage, StoreSettings, Turn


def main(n: int = 500) -> None:
    with tempfile.TemporaryDirectory() as tmp, ConversationStore(StoreSettings.default(Path(tmp))) as store:
        previous = None
        started = time.perf_counter()
        for i in range(n):
            turn = Turn(
                id=f"resp_{i}", source="responses", model="m", previous_id=previous, usage=Usage(100, 50),
                input=[StoredMessage(role="user", content="question " * 40)],
                output=[StoredMessage(role="assistant", content="answer " * 80)],
            )
            store.record(turn)
            previous = turn.id
        record = (time.perf_counter() - started) / n
        started = time.perf_counter()
        chain = store.history(previous)
        history = time.perf_counter() - started
        conversation_id = store.get(previous).conversation_id
        started = time.perf_counter()
        store.archive(conversation_id)
        archive = time.perf_counter() - started
        started = time.perf_counter()
        store.history(previous)
        cold_history = time.perf_counter() - started
        _, _, size = store.totals()
        print(f"record: {record * 1000:.2f} ms/turn (durable, synchronous=FULL)")
        print(f"history of a {len(chain)}-turn conversation: {history * 1000:.1f} ms hot, {cold_history * 1000:.1f} ms archived")
        print(f"archive a {len(chain)}-turn conversation: {archive * 1000:.1f} ms")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 500)

"""A process that records and archives as fast as it can, to be killed with SIGKILL at a random moment.

    python -m tests.support.store_worker DB_PATH ARCHIVE_DIR RUN_ID SEED

It records turns (half of them continuing a random earlier turn, which loads
archived conversations back), with a TTL of 20 ms and a small item bound so the
background archiver and the recording thread archive constantly, on a slow
"disk" (every fsync sleeps) so that kills often land mid-archive. After each
``record`` returns it prints ``ack <turn id> <previous id or -> <text>``: what
the store acknowledged, which must all survive the kill.
"""

from __future__ import annotations

import os
import random
import sys
import time
from pathlib import Path

from mlxcli.store import ConversationStore, StoredMessage, StoreSettings, Turn


def slow_disk() -> None:
    """Make every fsync take a few milliseconds, so kills often land while an archive is being written."""
    fsync = os.fsync

    def slow_fsync(fd: int) -> None:
        time.sleep(0.003)
        fsync(fd)

    os.fsync = slow_fsync


def main(db: str, archive_dir: str, run: str, seed: str) -> None:
    slow_disk()
    rng = random.Random(int(seed))
    settings = StoreSettings(
        path=Path(db), archive_dir=Path(archive_dir), ttl_seconds=0.02, max_items=12, archive_interval=0.005
    )
    store = ConversationStore(settings).start()
    known = [line.split()[1] for line in sys.stdin] if not sys.stdin.isatty() else []
    n = 0
    while True:
        previous = rng.choice(known) if known and rng.random() < 0.5 else None
        text = f"{run}-{n} " + "x" * rng.randint(0, 4000)
        turn = Turn(
            id=f"resp_{run}_{n}",
            source="responses",
            model="m",
            input=[StoredMessage(role="user", content=text)],
            output=[StoredMessage(role="assistant", content=f"answer {run}-{n}")],
            previous_id=previous,
        )
        store.record(turn)
        print(f"ack {turn.id} {previous or '-'} {run}-{n}", flush=True)
        known.append(turn.id)
        if rng.random() < 0.3:
            store.archive_due()  # archive from this thread too, racing the background archiver
        n += 1


if __name__ == "__main__":
    main(*sys.argv[1:5])

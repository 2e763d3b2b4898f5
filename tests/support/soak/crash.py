"""The crash leg: SIGKILL the server mid-run (requests in flight), damage its prompt-cache directory as a crash
or a bad disk would, start it again on the same directories, and check that nothing reported complete was lost.

Damage: one entry truncated (a partial file), one with its header overwritten (a damaged one), and a temporary
file as a writer killed long ago leaves it. The disk tier must remove all three (disk_cache.py: an entry that
fails its checks when its model's entries are scanned, a temporary file untouched for STALE_SECONDS), and no
request may be answered from them. ``check_removed`` looks once the run has gone on.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections import Counter
from pathlib import Path
from typing import Any, Callable

import openai

from tests.support.soak.calls import responses_answer
from tests.support.soak.record import Recorder
from tests.support.soak.server import SoakServer

STALE = ".tmp-0-soak-killed-writer"  # disk_cache.TEMPORARY's prefix


def damage(directory: Path) -> dict[str, Any]:
    """Truncate one entry and break another's header, of the model with the most entries (the busy chat model,
    whose entries are scanned at its next request); leave a stale temporary file."""
    entries = sorted(directory.glob("*.safetensors"))
    by_model = Counter(p.name[:16] for p in entries)
    busiest = [p for p in entries if by_model and p.name[:16] == by_model.most_common(1)[0][0]]
    done: dict[str, Any] = {"entries_at_kill": len(entries), "left_by_kill": sorted(p.name for p in directory.glob(".tmp-*"))}
    if busiest:
        truncated = busiest[0]
        os.truncate(truncated, truncated.stat().st_size // 2)
        done["truncated"] = truncated.name
    if len(busiest) > 1:
        broken = busiest[1]
        with open(broken, "r+b") as f:
            f.seek(8)
            f.write(b"\x00not a header\x00")
        done["broken_header"] = broken.name
    done["digests"] = {p.name: _digest(p) for p in busiest[:2]}
    stale = directory / STALE
    stale.write_bytes(b"half a cache")
    old = time.time() - 3600
    os.utime(stale, (old, old))
    done["stale_temporary"] = STALE
    return done


def crash_leg(server: SoakServer, rec: Recorder, warm_up: Callable[[], None]) -> dict[str, Any]:
    killed_at = rec.now()
    completed = rec.completed_before(killed_at)
    server.kill()
    damaged = damage(server.cache_dir)
    if "broken_header" not in damaged:
        rec.violation("crash leg", f"fewer than 2 prompt-cache entries on disk at the kill ({damaged['entries_at_kill']}): "
                      "nothing to damage; is the disk tier written?")
    try:
        restart = server.start()  # the store opens (serve opens it before loading any model) and the server answers
    except Exception as exc:
        rec.violation("crash leg", f"the server did not start again on the same directories: {exc}")
        raise
    warm_up()
    server.ready.set()
    ready_at = rec.now()
    lost = 0
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="soak", max_retries=2)
    for response_id, expected in completed.items():
        try:
            response = client.responses.retrieve(response_id).model_dump(mode="json")
            got = responses_answer(response)
            if response["status"] != "completed" or (got["text"], got["calls"]) != (expected["text"], expected["calls"]):
                raise AssertionError(f"status {response['status']}, {got['text']!r} {got['calls']}")
        except Exception as exc:  # noqa: BLE001 - a 404 or a different answer: lost either way
            lost += 1
            rec.violation("crash: lost", f"{response_id}, complete before the kill: {exc!r}"[:300])
    client.close()
    return {"killed_at": round(killed_at, 1), "ready_at": round(ready_at, 1), "restart_s": round(restart, 1),
            "completed_before_kill": len(completed), "retrieved": len(completed) - lost, "damaged": damaged,
            "log": server.log_path.name}


def check_removed(server: SoakServer, rec: Recorder, leg: dict[str, Any]) -> None:
    """Every damaged file removed: the two entries with the disk tier's warning in the restarted server's log (the
    same prompt, sent again, may have written a whole entry under the same name since), the temporary file gone."""
    damaged = leg["damaged"]
    log = (server.out / leg["log"]).read_text(errors="replace")
    for key in ("truncated", "broken_header"):
        name = damaged.get(key)
        if name is None:
            continue
        path = server.cache_dir / name
        if path.exists() and _digest(path) == damaged["digests"][name]:
            rec.violation("crash: damaged file kept", f"{key} {name} is still in the prompt-cache directory, as it was left")
        elif f"prompt cache: removing {path}" not in log:
            rec.violation("crash: damaged file", f"{key} {name} was replaced, but not removed as damaged (no warning in the log)")
    if (server.cache_dir / STALE).exists():
        rec.violation("crash: damaged file kept", f"the stale temporary file {STALE} is still in the prompt-cache directory")


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()

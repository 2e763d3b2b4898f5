"""The prompt cache's disk tier: what memory evicts (and everything at stop) comes back after a restart;
damaged files are skipped and removed; the byte budget holds; writers killed mid-write leave nothing
that a reader loads.

Caches here hold their own tokens as keys, so a loaded cache shows whose it is.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import mlx.core as mx
import pytest
from mlx_lm.models.cache import KVCache, load_prompt_cache

from mlxcli.engine.disk_cache import DiskCache, file_name
from mlxcli.engine.prompt_cache import PromptCache
from tests.support.http import wait_for

MODEL = "model-identity"


def cache_of(tokens: list[int]) -> list:
    cache = KVCache()
    keys = mx.array(tokens, dtype=mx.float32).reshape(1, 1, len(tokens), 1)
    cache.update_and_fetch(keys, keys)
    return [cache]


def held(cache: list) -> list[int]:
    """The tokens a cache made by ``cache_of`` holds."""
    return [int(t) for t in cache[0].state[0][0, 0, : cache[0].offset, 0].tolist()]


def first_key(cache: list) -> int:
    return int(cache[0].state[0][0, 0, 0, 0].item())


def two_tiers(directory: Path, *, entries: int = 2, disk_bytes: int = 1 << 30) -> PromptCache:
    return PromptCache(max_bytes=1 << 30, max_entries=entries, disk=DiskCache(directory, disk_bytes))


def files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def test_what_memory_evicts_and_what_it_holds_at_stop_is_found_after_a_restart(tmp_path):
    first = two_tiers(tmp_path)
    prompts = [[1, 2, 3, 4], [5, 6, 7], [8, 9, 10, 11, 12]]
    for tokens in prompts:
        first.store(MODEL, tokens, cache_of(tokens))
    assert len(files(tmp_path)) == 1  # two fit in memory: the oldest went to disk
    first.clear()  # what the engine does as it stops
    assert len(files(tmp_path)) == 3

    restarted = two_tiers(tmp_path)
    for tokens in prompts:
        reuse = restarted.fetch(MODEL, tokens + [99, 100])
        assert (reuse.cached, reuse.rest) == (len(tokens), [99, 100])
        assert held(reuse.cache) == tokens
    # A trimmable cache also supplies the prefix it shares with a prompt that diverges from it.
    diverging = restarted.fetch(MODEL, [8, 9, 10, 50, 51])
    assert (diverging.cached, held(diverging.cache)) == (3, [8, 9, 10])
    assert restarted.fetch("another-model", [1, 2, 3, 4, 5]).cached == 0
    assert restarted.stats()["disk"]["hits"] >= 1


def test_an_entry_extended_by_a_longer_one_is_dropped_from_disk(tmp_path):
    cache = two_tiers(tmp_path, entries=1)
    for turn in ([1, 2, 3], [1, 2, 3, 4, 5], [1, 2, 3, 4, 5, 6, 7]):
        cache.store(MODEL, turn, cache_of(turn))
    cache.clear()
    assert files(tmp_path) == [file_name(MODEL, [1, 2, 3, 4, 5, 6, 7])]


def _flip_a_data_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:-100])


def _another_models_header(path: Path) -> None:
    data = path.read_bytes().replace(MODEL.encode(), b"other-identity")
    path.write_bytes(data)


def _not_safetensors(path: Path) -> None:
    path.write_bytes(b"\x00" * 4096)


@pytest.mark.parametrize("damage", [_flip_a_data_byte, _truncate, _another_models_header, _not_safetensors])
def test_a_corrupt_truncated_or_foreign_file_is_skipped_and_removed(tmp_path, caplog, damage):
    tokens = list(range(1, 300))
    writer = two_tiers(tmp_path)
    writer.store(MODEL, tokens, cache_of(tokens))
    writer.clear()
    (entry,) = tmp_path.iterdir()
    damage(entry)
    unrelated = tmp_path / "notes.txt"  # not ours: never touched
    unrelated.write_text("keep me")

    reader = two_tiers(tmp_path)
    with caplog.at_level(logging.WARNING, logger="mlxcli.engine"):
        reuse = reader.fetch(MODEL, tokens + [7])
    assert (reuse.cache, reuse.cached) == (None, 0)
    assert files(tmp_path) == ["notes.txt"] and unrelated.read_text() == "keep me"
    assert f"prompt cache: removing {entry}" in caplog.text
    assert reader.stats()["disk"]["removed"] == 1


def test_an_entry_is_a_prompt_cache_file_mlx_lm_itself_reads(tmp_path):
    writer = two_tiers(tmp_path)
    writer.store(MODEL, [4, 5, 6], cache_of([4, 5, 6]))
    writer.clear()
    (entry,) = tmp_path.iterdir()
    cache, metadata = load_prompt_cache(str(entry), return_metadata=True)
    assert held(cache) == [4, 5, 6] and json.loads(metadata["tokens"]) == [4, 5, 6]


def test_the_disk_budget_holds_and_the_least_recently_used_go_first(tmp_path):
    probe = DiskCache(tmp_path / "probe", 1 << 30)
    probe.save(MODEL, [1, 2], cache_of([1, 2]))
    entry_bytes = probe.usage()[1]
    disk = DiskCache(tmp_path / "cache", int(entry_bytes * 3.5))
    prompts = [[n, n + 1] for n in range(10, 200, 10)]
    for age, tokens in enumerate(prompts[:3], start=1):
        disk.save(MODEL, tokens, cache_of(tokens))
        path = disk.directory / file_name(MODEL, tokens)
        os.utime(path, ns=(age * 10**9, age * 10**9))  # written in this order, whatever the clock's resolution
    assert disk.load(MODEL, file_name(MODEL, prompts[0])) is not None  # used again: now the most recent
    disk.save(MODEL, prompts[3], cache_of(prompts[3]))
    assert files(disk.directory) == sorted(file_name(MODEL, t) for t in (prompts[0], prompts[2], prompts[3]))
    for tokens in prompts[4:]:
        disk.save(MODEL, tokens, cache_of(tokens))
        entries, size = disk.usage()
        assert entries == 3 and size <= entry_bytes * 3.5
    assert file_name(MODEL, prompts[-1]) in files(disk.directory)


def test_an_entry_larger_than_the_whole_budget_is_not_written(tmp_path):
    disk = DiskCache(tmp_path, 1000)
    disk.save(MODEL, list(range(300)), cache_of(list(range(300))))
    assert files(tmp_path) == []


WRITER = textwrap.dedent(
    """
    import sys
    import mlx.core as mx
    from mlx_lm.models.cache import KVCache
    from mlxcli.engine.disk_cache import DiskCache

    disk = DiskCache(sys.argv[1], 1 << 34)
    n = 0
    while True:  # until killed: entries big enough that a kill lands mid-write
        n += 1
        tokens = [n] + list(range(1, 20000))
        cache = KVCache()
        keys = mx.array(tokens, dtype=mx.float32).reshape(1, 1, len(tokens), 1)
        cache.update_and_fetch(mx.repeat(keys, 64, axis=3), mx.repeat(keys, 64, axis=3))
        disk.save("writer", tokens, [cache])
    """
)


@pytest.mark.slow  # writers killed in subprocesses
def test_writers_killed_mid_write_leave_no_file_a_reader_loads(tmp_path):
    """Readers see whole files or none, while a writer writes and after it is SIGKILLed mid-write."""
    reader = DiskCache(tmp_path, 1 << 34)
    loads = 0

    def read_all() -> int:
        nonlocal loads
        for name in files(tmp_path):
            if name.startswith(".tmp-") or (found := reader.load("writer", name)) is None:
                continue  # a temporary file, or removed meanwhile
            cache, tokens = found
            assert cache[0].offset == len(tokens) and first_key(cache) == tokens[0]
            loads += 1
        return loads

    for _ in range(3):
        writer = subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path)])
        before = loads
        try:  # read while it writes; kill it while it writes a file
            mid_write = lambda: read_all() > before and any(n.startswith(".tmp-") for n in files(tmp_path))
            assert wait_for(mid_write, timeout=120, interval=0.01), "the writer wrote nothing"
        finally:
            writer.send_signal(signal.SIGKILL)
            writer.wait()
        read_all()
    assert reader.stats.removed == 0
    assert any(n.startswith(".tmp-") for n in files(tmp_path)), "no writer was killed mid-write"
    for name in files(tmp_path):  # a reader clears temporary files once their writer is long gone
        if name.startswith(".tmp-"):
            os.utime(tmp_path / name, ns=(0, 0))
    reader.usage()
    assert not any(n.startswith(".tmp-") for n in files(tmp_path))

"""Atomic installs: an interrupted or killed pull leaves nothing usable, concurrent pulls build once."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from mlxcli.core.errors import ModelError
from mlxcli.models import gguf, install, list_local_models, pull, resolve_model
from tests.models.helpers import count_conversions, leftovers

REPO = Path(__file__).resolve().parents[2]


def test_interrupted_conversion_leaves_nothing_a_load_would_pick_up(home, tiny_gguf_file, monkeypatch):
    real = gguf.convert_gguf

    def crash_after_writing(src, dst, progress=None):
        real(src, dst, progress)  # every model file is written...
        raise RuntimeError("disk on fire")  # ...but the install never completes

    monkeypatch.setattr(gguf, "convert_gguf", crash_after_writing)
    with pytest.raises(RuntimeError, match="disk on fire"):
        pull(str(tiny_gguf_file), home=home)
    assert leftovers(home) == []
    assert list_local_models(home, include_hf=False) == []
    with pytest.raises(ModelError):
        resolve_model(str(tiny_gguf_file), home=home, download=False)
    monkeypatch.setattr(gguf, "convert_gguf", real)
    assert pull(str(tiny_gguf_file), home=home).source == "gguf"


KILLED_PULL = """
import sys
from pathlib import Path
from mlxcli.models import pull
from mlxcli.models.gguf import convert
def stall(model_dir):
    print("stalled", flush=True)  # the model files are written; the install is not complete
    sys.stdin.read()  # until killed (or until the test's end of the pipe closes)
convert.verify_loadable = stall
pull(sys.argv[1], home=Path(sys.argv[2]))
"""


def test_killed_pull_leaves_nothing_and_is_cleaned_up(home, tiny_gguf_file, tmp_path):
    stderr = tmp_path / "stderr"
    with open(stderr, "w") as err:
        proc = subprocess.Popen([sys.executable, "-c", KILLED_PULL, str(tiny_gguf_file), str(home)], cwd=REPO,
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, text=True)
    try:
        assert proc.stdout is not None
        readable, _, _ = select.select([proc.stdout], [], [], 120)  # a bound for failures only
        assert readable, "the pull never reached the conversion"
        line = proc.stdout.readline()
        if line != "stalled\n":
            proc.wait()
            pytest.fail(f"the pull ended before the conversion stalled: {stderr.read_text()}")
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        for pipe in (proc.stdin, proc.stdout):
            if pipe:
                pipe.close()
    stale = leftovers(home)
    assert stale and all(name.startswith(".tmp-") for name in stale)  # the half-built model...
    assert list_local_models(home, include_hf=False) == []  # ...is invisible
    with pytest.raises(ModelError):
        resolve_model(str(tiny_gguf_file), home=home, download=False)
    assert pull(str(tiny_gguf_file), home=home).source == "gguf"  # the kernel released the lock
    assert leftovers(home) == []  # and the next pull cleaned up


def test_concurrent_pulls_convert_once(home, tiny_gguf_file, monkeypatch):
    workers = 4
    calls = count_conversions(monkeypatch)
    counting_convert = gguf.convert_gguf
    arrived = threading.Condition()
    waiting: list[int] = []  # one entry per pull that has asked for the install lock
    real_locked = install.locked

    def counted_lock(models, name, *, blocking=True):
        if blocking:
            with arrived:
                waiting.append(1)
                arrived.notify_all()
        return real_locked(models, name, blocking=blocking)

    def convert_once_all_wait(src, dst, progress=None):
        with arrived:  # every pull now waits for this one's lock (a bound for failures only)
            assert arrived.wait_for(lambda: len(waiting) >= workers, timeout=120)
        counting_convert(src, dst, progress)

    monkeypatch.setattr(install, "locked", counted_lock)
    monkeypatch.setattr(gguf, "convert_gguf", convert_once_all_wait)
    results, errors = [], []

    def worker():
        try:
            results.append(pull(str(tiny_gguf_file), home=home))
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=worker) for _ in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(calls) == 1
    assert len(set(results)) == 1
    assert leftovers(home) == []

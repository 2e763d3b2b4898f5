"""Atomic installs: an interrupted or killed pull leaves nothing usable, concurrent pulls build once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from mlxcli.core.errors import ModelError
from mlxcli.models import gguf, list_local_models, pull, resolve_model
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
import sys, time
from pathlib import Path
from mlxcli.models import pull
from mlxcli.models.gguf import convert
def stall(model_dir):
    Path(sys.argv[3]).touch()  # the model files are written; the install is not complete
    time.sleep(60)
convert.verify_loadable = stall
pull(sys.argv[1], home=Path(sys.argv[2]))
"""


def test_killed_pull_leaves_nothing_and_is_cleaned_up(home, tiny_gguf_file, tmp_path):
    flag = tmp_path / "stalled"
    proc = subprocess.Popen([sys.executable, "-c", KILLED_PULL, str(tiny_gguf_file), str(home), str(flag)],
                            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while not flag.exists():
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            assert time.monotonic() < deadline, "the pull never reached the conversion"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
        if proc.stderr:
            proc.stderr.close()
    stale = leftovers(home)
    assert stale and all(name.startswith(".tmp-") for name in stale)  # the half-built model...
    assert list_local_models(home, include_hf=False) == []  # ...is invisible
    with pytest.raises(ModelError):
        resolve_model(str(tiny_gguf_file), home=home, download=False)
    assert pull(str(tiny_gguf_file), home=home).source == "gguf"  # the kernel released the lock
    assert leftovers(home) == []  # and the next pull cleaned up


def test_concurrent_pulls_convert_once(home, tiny_gguf_file, monkeypatch):
    calls = count_conversions(monkeypatch, delay=0.3)
    results, errors = [], []

    def worker():
        try:
            results.append(pull(str(tiny_gguf_file), home=home))
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(calls) == 1
    assert len(set(results)) == 1
    assert leftovers(home) == []

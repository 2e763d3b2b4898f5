"""The slow tier is chosen from what a test reaches (tests/support/tiers.py), so that a new test lands in its tier
without anyone remembering a marker: checked on a small suite of its own, collected by a real pytest."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

CONFTEST = '''
import pytest
from tests.support import tiers

def pytest_collection_modifyitems(items):
    tiers.mark(items)

def pytest_collection_finish(session):
    for item in session.items:
        print("markers", item.name, *sorted({m.name for m in item.iter_markers()} - {"parametrize"}))

@pytest.fixture
def default_model_dir(): return "smollm2"
@pytest.fixture
def tokenizer_dir(default_model_dir): return default_model_dir
@pytest.fixture
def tiny_model_dir(tokenizer_dir): return tokenizer_dir
@pytest.fixture
def real_engine(default_model_dir): return default_model_dir
@pytest.fixture
def browser(): return None
@pytest.fixture
def open_page(browser): return None
@pytest.fixture
def tiny_vlm_dir(tokenizer_dir): return tokenizer_dir
'''

TESTS = '''
import pytest

def test_scripted(tokenizer_dir): pass
def test_tiny(tiny_model_dir): pass
def test_real_model(default_model_dir): pass
def test_real_model_through_a_fixture(real_engine): pass
def test_page(open_page): pass
def test_vision(tiny_vlm_dir): pass
@pytest.mark.slow
def test_subprocess(): pass
@pytest.mark.distributed
def test_ranks(): pass
@pytest.mark.parametrize("case", [pytest.param("a", marks=pytest.mark.slow), "b"])
def test_cases(case): pass
'''


def collect(directory: Path, *args: str) -> dict[str, set[str]]:
    """The tests pytest collects there, each with its markers."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    done = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-s", "-p", "no:cacheprovider", *args],
                          cwd=directory, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    return {name: set(markers) for _, name, *markers in (line.split() for line in done.stdout.splitlines() if line.startswith("markers "))}


def test_tiers_follow_what_a_test_reaches(tmp_path: Path):
    (tmp_path / "conftest.py").write_text(textwrap.dedent(CONFTEST))
    (tmp_path / "test_suite.py").write_text(textwrap.dedent(TESTS))
    assert collect(tmp_path) == {
        "test_scripted": set(),
        "test_tiny": set(),
        "test_real_model": {"slow", "default_model"},
        "test_real_model_through_a_fixture": {"slow", "default_model"},
        "test_page": {"slow", "browser"},
        "test_vision": {"slow", "vision"},
        "test_subprocess": {"slow"},
        "test_ranks": {"slow", "distributed"},
        "test_cases[a]": {"slow"},
        "test_cases[b]": set(),
    }
    assert set(collect(tmp_path, "-m", "not slow")) == {"test_scripted", "test_tiny", "test_cases[b]"}  # scripts/test --fast

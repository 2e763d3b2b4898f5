"""What is installed: listing local models (ours and the HF cache's) and removing ours.

Removal only ever touches a directory directly inside ``models_dir()``; models in the HF cache
are listed but left to the Hugging Face CLI.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from mlxcli.core.errors import ModelError
from mlxcli.models import hub
from mlxcli.models.install import read_marker, uninstall
from mlxcli.models.names import parse_name
from mlxcli.models.resolve import LocalModel
from mlxcli.paths import models_dir


def _tree_size(path: Path) -> int:
    total = 0
    for dirpath, _, files in os.walk(path):
        for f in files:
            with contextlib.suppress(OSError):
                total += os.stat(os.path.join(dirpath, f)).st_size  # follows HF's blob symlinks
    return total


def list_local_models(home: Path | None = None, *, include_hf: bool = True) -> list[LocalModel]:
    """Installed models (complete ones only), then MLX-loadable repos in the HF cache; sizes filled."""
    models = models_dir(home)
    found: list[LocalModel] = []
    if models.is_dir():
        for entry in sorted(models.iterdir()):
            if entry.name.startswith(".") or entry.is_symlink() or not entry.is_dir():
                continue
            marker = read_marker(entry)
            if marker is not None:
                found.append(LocalModel(entry.name, entry, str(marker.get("source", "local")), _tree_size(entry)))
    if include_hf:
        found.extend(_list_hf_models())
    return found


def _list_hf_models() -> list[LocalModel]:
    try:
        from huggingface_hub import scan_cache_dir

        info = scan_cache_dir(hub.hf_cache_dir())
    except Exception:  # no cache yet, or an unreadable one: nothing to list
        return []
    found = []
    for repo in sorted(info.repos, key=lambda r: r.repo_id):
        if repo.repo_type != "model":
            continue
        for revision in sorted(repo.revisions, key=lambda r: r.last_modified, reverse=True):
            if hub.mlx_dir_problem(Path(revision.snapshot_path)) is None:
                found.append(LocalModel(repo.repo_id, Path(revision.snapshot_path), "hf", repo.size_on_disk))
                break
    return found


def remove_local_model(name: str, home: Path | None = None) -> Path:
    """Delete an installed model from ``models_dir()``; refuses anything else. Returns its path."""
    parsed = parse_name(name, allow_paths=False)
    if parsed.kind == "repo":
        raise ModelError(f"{parsed.value} lives in the Hugging Face cache, not in mlxcli's models "
                         "directory; delete it with the Hugging Face CLI (hf cache)")
    models = models_dir(home)
    target = models / parsed.value
    if target.is_symlink() or target.resolve().parent != models.resolve():
        raise ModelError(f"refusing to remove {target}: not a directory inside {models}")
    if not uninstall(models, parsed.value):
        raise ModelError(f"model {parsed.value!r} is not installed in {models}")
    return target

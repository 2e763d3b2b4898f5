"""Hugging Face: snapshots of MLX repos in the standard HF cache, and what they must contain.

``huggingface_hub`` is imported inside the functions: it is slow to import and only needed
when a repo id is resolved or the cache is listed.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

from mlxcli.core.errors import ModelError
from mlxcli.models import speech
from mlxcli.models.progress import Progress

# Only weights, configs, tokenizers and templates: never pickles (.bin/.pth), GGUF or code (.py). NumPy's
# .npz (the older mlx-whisper conversions) is read by MLX's own loader, which never unpickles.
HF_ALLOW_PATTERNS = ["*.json", "*.safetensors", "*.npz", "*.jinja", "*.model", "*.tiktoken", "*.txt"]
# An image pipeline (diffusers' model_index.json, or mflux's saved layout): its component folders only. Repos
# such as FLUX.1's also hold the whole model again as one file at the top (23 GB), which mflux does not read.
PIPELINE_PATTERNS = ["model_index.json", *(f"*/{p}" for p in HF_ALLOW_PATTERNS)]


def hf_cache_dir() -> str:
    """The HF hub cache, read at call time (``huggingface_hub`` reads HF_HOME once, at import)."""
    if cache := os.environ.get("HF_HUB_CACHE"):
        return os.path.expanduser(cache)
    if home := os.environ.get("HF_HOME"):
        return os.path.join(os.path.expanduser(home), "hub")
    from huggingface_hub import constants

    return constants.HF_HUB_CACHE


def _hf_endpoint() -> str | None:
    return os.environ.get("HF_ENDPOINT") or None


def snapshot(repo_id: str, report: Progress, *, local_only: bool, patterns: list[str] | None = None) -> Path | None:
    """The snapshot directory in the HF cache (None: not cached, when ``local_only``); ``patterns``: the files
    to fetch (default ``HF_ALLOW_PATTERNS``)."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    kwargs: dict[str, Any] = {"allow_patterns": patterns or HF_ALLOW_PATTERNS, "cache_dir": hf_cache_dir(),
                              "endpoint": _hf_endpoint()}
    if local_only:
        kwargs["local_files_only"] = True
    else:
        kwargs["tqdm_class"] = _progress_class(report)
    try:
        return Path(snapshot_download(repo_id, **kwargs))
    except LocalEntryNotFoundError as e:  # includes an incomplete (interrupted) snapshot
        if local_only:
            return None
        raise ModelError(f"could not reach Hugging Face for {repo_id}: {_first_line(e)}") from e
    except GatedRepoError as e:
        raise ModelError(f"{repo_id} is gated on Hugging Face: accept its terms and set HF_TOKEN") from e
    except RepositoryNotFoundError as e:
        raise ModelError(f"{repo_id} was not found on Hugging Face (private? set HF_TOKEN)") from e
    except RevisionNotFoundError as e:
        raise ModelError(f"{repo_id}: revision not found ({_first_line(e)})") from e
    except (HfHubHTTPError, OSError) as e:
        raise ModelError(f"could not fetch {repo_id} from Hugging Face: {_first_line(e)}") from e
    except Exception as e:  # httpx transport errors and other hub-client failures
        if type(e).__module__.split(".")[0] in ("httpx", "httpx2", "huggingface_hub"):
            raise ModelError(f"could not fetch {repo_id} from Hugging Face: {_first_line(e)}") from e
        raise


def _first_line(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0]


def mlx_dir_problem(path: Path) -> str | None:
    """Why ``path`` cannot be loaded as an mlx-lm model or an image pipeline (None when it looks complete)."""
    if is_pipeline(path):
        return pipeline_problem(path)
    if not (path / "config.json").is_file():
        return "no config.json"
    index = path / "model.safetensors.index.json"
    if index.is_file():
        try:
            shards = set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values())
        except (OSError, ValueError, KeyError, AttributeError):
            return "unreadable model.safetensors.index.json"
        missing = sorted(s for s in shards if not (path / s).is_file())
        return f"missing weight shards {', '.join(missing)}" if missing else None
    if not any(path.glob("model*.safetensors")) and not speech.has_weights(path):
        return "no model*.safetensors weights"
    return None


def is_pipeline(path: Path) -> bool:
    """An image pipeline: diffusers' model_index.json, or mflux's saved layout (component folders, no config.json)."""
    return (path / "model_index.json").is_file() or (not (path / "config.json").exists() and (path / "transformer").is_dir()
                                                     and (path / "vae").is_dir())


def pipeline_problem(path: Path) -> str | None:
    """Why the pipeline at ``path`` is incomplete: a component folder missing, or weights missing from one."""
    parts = ["transformer", "vae"]
    index = path / "model_index.json"
    if index.is_file():
        try:
            listed = json.loads(index.read_text(encoding="utf-8"))
            parts = [k for k, v in listed.items() if isinstance(v, list) and v and v[0] is not None]
        except (OSError, ValueError, AttributeError):
            return "unreadable model_index.json"
    for part in parts:
        folder = path / part
        if not folder.is_dir() or not any(folder.iterdir()):
            return f"no {part}/ folder"
        for shard_index in folder.glob("*.safetensors.index.json"):
            try:
                shards = set(json.loads(shard_index.read_text(encoding="utf-8"))["weight_map"].values())
            except (OSError, ValueError, KeyError, AttributeError):
                return f"unreadable {part}/{shard_index.name}"
            missing = sorted(s for s in shards if not (folder / s).is_file())
            if missing:
                return f"missing weight shards {part}/{', '.join(missing)}"
    return None


def patterns_for(repo_id: str) -> list[str]:
    """What to fetch of a repo: an image pipeline's component folders, else every model file."""
    try:
        from huggingface_hub import HfApi

        files = HfApi(endpoint=_hf_endpoint()).list_repo_files(repo_id)
    except Exception:  # the snapshot's own request reports why the repo cannot be had
        return HF_ALLOW_PATTERNS
    saved = "config.json" not in files and any(f.startswith("transformer/") for f in files) and any(f.startswith("vae/") for f in files)
    return PIPELINE_PATTERNS if "model_index.json" in files or saved else HF_ALLOW_PATTERNS


def repo_is_gguf_only(repo_id: str) -> bool:
    try:
        from huggingface_hub import HfApi

        files = HfApi(endpoint=_hf_endpoint()).list_repo_files(repo_id)
    except Exception:
        return False
    return any(f.endswith(".gguf") for f in files) and not any(f.endswith(".safetensors") for f in files)


def _progress_class(report: Progress) -> type:
    """A tqdm class for ``snapshot_download`` that forwards counts instead of drawing.

    Recent clients open several byte bars (network transfer, bytes written) fed with the same
    counts for plain HTTP downloads: the first byte bar is reported as "download". Older clients
    only open the files bar: it is reported as "files".
    """
    from huggingface_hub.utils import tqdm as hf_tqdm

    owner: list[object] = []  # the byte bar whose counts are reported
    lock = threading.Lock()  # download threads update the shared bars concurrently

    class _Forward(hf_tqdm):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs["disable"] = True
            self._stage = "download" if kwargs.get("unit") == "B" else "files"
            super().__init__(*args, **kwargs)
            self.n = kwargs.get("initial", 0) or 0
            if self._stage == "download" and not owner:
                owner.append(self)

        def update(self, n: float | None = 1) -> bool | None:
            with lock:
                self.n += n or 0
                if self._stage == "files" or (owner and owner[0] is self):
                    report(self._stage, int(self.n), int(self.total) if self.total else None)
            return None

    return _Forward

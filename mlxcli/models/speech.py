"""Speech-to-text model directories (Whisper, in mlx-whisper's layout): how one is recognised, where its
weights and tokenizer are, and the tokenizer a Hub conversion lacks.

The ``mlx-community/whisper-*`` repos hold ``config.json`` and the weights only (mlx-whisper ships its
tokenizers in its package). Every Whisper of one vocabulary shares one tokenizer, so pulling such a repo
also fetches ``tokenizer.json`` from the OpenAI repo of that vocabulary into the Hugging Face cache.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mlxcli.core.errors import ModelError
from mlxcli.models.progress import Progress

WEIGHT_FILES = ("weights.safetensors", "weights.npz")
TOKENIZER = "tokenizer.json"
# Whisper's vocabularies by size: English-only (GPT-2's), multilingual, and large-v3's (one more language).
TOKENIZER_REPOS = {51864: "openai/whisper-tiny.en", 51865: "openai/whisper-tiny", 51866: "openai/whisper-large-v3"}


def is_whisper(config: dict[str, Any]) -> bool:
    return config.get("model_type") == "whisper" or "n_audio_ctx" in config


def has_weights(path: Path) -> bool:
    return any((path / f).is_file() for f in WEIGHT_FILES)


def tokenizer_repo(config: dict[str, Any]) -> str | None:
    """The OpenAI repo whose tokenizer fits this config's vocabulary."""
    return TOKENIZER_REPOS.get(config.get("n_vocab"))  # type: ignore[arg-type]


def tokenizer_file(path: Path, config: dict[str, Any]) -> Path:
    """The model's ``tokenizer.json``: in its directory, else its vocabulary's, fetched when it was pulled."""
    own = path / TOKENIZER
    if own.is_file():
        return own
    repo = tokenizer_repo(config)
    if repo is None:
        raise ModelError(f"{path}: no {TOKENIZER}, and no known Whisper vocabulary of {config.get('n_vocab')} tokens")
    from mlxcli.models import hub

    cached = hub.snapshot(repo, lambda *_: None, local_only=True, patterns=[TOKENIZER])
    if cached is None or not (cached / TOKENIZER).is_file():
        raise ModelError(f"{path}: no {TOKENIZER}; pull the model again (`mlxcli pull REPO`) to fetch {repo}'s")
    return cached / TOKENIZER


def ensure_tokenizer(path: Path, config: dict[str, Any], report: Progress) -> None:
    """When ``path`` (a Hub snapshot) has no tokenizer and its vocabulary's is not cached: fetch that."""
    try:
        tokenizer_file(path, config)
        return
    except ModelError:
        repo = tokenizer_repo(config)
        if repo is None:
            raise
    from mlxcli.models import hub

    hub.snapshot(repo, report, local_only=False, patterns=[TOKENIZER])

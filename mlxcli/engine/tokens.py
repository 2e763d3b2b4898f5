"""Count a chat prompt's tokens with a model's tokenizer, without loading its weights (benchmarks)."""

from __future__ import annotations

from pathlib import Path

from mlx_lm.utils import load_tokenizer

from mlxcli.core.errors import ModelError
from mlxcli.core.request import ChatRequest
from mlxcli.engine import prompt
from mlxcli.engine.loading import read_config


class PromptCounter:
    """``counter(request)``: the number of tokens the chat template renders ``request`` to."""

    def __init__(self, path: Path):
        config = read_config(path)
        try:
            self.tokenizer = load_tokenizer(path, eos_token_ids=config.get("eos_token_id"))
        except Exception as exc:  # mlx-lm raises many types for a broken directory
            raise ModelError(f"cannot load the tokenizer from {path}: {exc}") from exc

    def __call__(self, request: ChatRequest) -> int:
        return len(prompt.render(self.tokenizer, request).tokens)

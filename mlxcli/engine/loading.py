"""Load an MLX model directory into memory (called on the engine thread)."""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlx.core as mx
import mlx.nn as nn
from mlx_lm.tokenizer_utils import TokenizerWrapper
from mlx_lm.utils import dequantize_model, load_model, load_tokenizer

from mlxcli.core.errors import ModelError
from mlxcli.engine import group, platform
from mlxcli.engine.settings import Speculation

log = logging.getLogger("mlxcli.engine")

# Config keys that hold a model's context window, most specific first.
CONTEXT_KEYS = ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length", "n_ctx")
FALLBACK_CONTEXT = 4096


@dataclass
class LoadedModel:
    name: str  # the name the model is served under
    path: Path
    model: nn.Module
    tokenizer: TokenizerWrapper | None  # None: an image pipeline (its tokenizers are its own)
    config: dict[str, Any]
    context_window: int
    dtype: str  # what the weights run as, e.g. "float32 (dequantized)" or "4-bit"
    load_seconds: float
    weight_bytes: int = 0  # memory held by the weights (its draft model's included)
    speculation: Speculation | None = None  # what it speculates with (speculation/setup.py), once checked
    draft: "LoadedModel | None" = None  # its draft model


@dataclass(frozen=True)
class ModelDir:
    """A model directory as the model kinds see it (kinds.py): its path and config.json, read once."""

    path: Path
    config: dict[str, Any]

    @classmethod
    def read(cls, path: Path) -> "ModelDir":
        # A diffusion pipeline (model_index.json, or mflux's saved layout) has its configs in its component folders.
        pipeline = not (path / "config.json").exists() and ((path / "model_index.json").is_file() or (path / "transformer").is_dir())
        return cls(path, {} if pipeline else read_config(path))


def context_window_of(config: dict[str, Any], limit: int | None = None) -> int:
    """The context window from the model config; ``limit`` can only lower it."""
    sources = [config, config.get("text_config") or {}]
    window = next(
        (int(src[k]) for src in sources for k in CONTEXT_KEYS if isinstance(src.get(k), int) and src[k] > 0),
        FALLBACK_CONTEXT,
    )
    return min(window, limit) if limit else window


def fingerprint(path: Path, chat_template: str | None) -> str:
    """What a KV cache computed with this model depends on: the directory, its files (names, sizes, mtimes:
    weights, config, tokenizer) and the chat template in use. Cheap: no file is read."""
    files = sorted(p for p in path.iterdir() if p.is_file()) if path.is_dir() else [path]
    parts = [str(path.resolve())] + [f"{p.name}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in files]
    parts.append(hashlib.sha256((chat_template or "").encode()).hexdigest())
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def read_config(path: Path) -> dict[str, Any]:
    try:
        return json.loads((path / "config.json").read_text())
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot read {path / 'config.json'}: {exc}") from exc


def tokenizer_of(path: Path, config: dict[str, Any], chat_template: str | None = None) -> TokenizerWrapper:
    """The tokenizer alone (no weights: cheap); ``chat_template`` (Jinja text) replaces the model's."""
    extra = {"chat_template": chat_template} if chat_template is not None else None
    try:
        return load_tokenizer(path, tokenizer_config_extra=extra, eos_token_ids=config.get("eos_token_id"))
    except Exception as exc:  # transformers raises many types for a broken tokenizer
        raise ModelError(f"cannot load the tokenizer from {path}: {exc}") from exc


def load(
    name: str,
    path: Path,
    *,
    context_length: int | None = None,
    tokenizer: TokenizerWrapper | None = None,
    shard: str | None = None,
) -> LoadedModel:
    """Load weights (and the tokenizer unless given); on the CPU fast path run them as float32.
    ``shard`` (tensor or pipeline): keep only this rank's part of them (group.py)."""
    start = time.perf_counter()
    try:
        model, config = load_model(path, lazy=shard is not None)
        tokenizer = tokenizer or load_tokenizer(path, eos_token_ids=config.get("eos_token_id"))
    except Exception as exc:  # mlx-lm raises many types for a broken directory
        raise ModelError(f"cannot load model {name!r} from {path}: {exc}") from exc
    device = "cpu" if mx.default_device().type == mx.cpu else "gpu"
    dtype = describe_dtype(model, config)
    if device == "cpu" and platform.current().fast_path:
        model = to_float32(model)
        dtype = f"float32 (from {dtype})" if not dtype.startswith("float32") else dtype
    if shard is not None:
        group.shard(model, config, shard)
    mx.eval(model.parameters())
    loaded = LoadedModel(
        name=name,
        path=path,
        model=model,
        tokenizer=tokenizer,
        config=config,
        context_window=context_window_of(config, context_length),
        dtype=dtype,
        load_seconds=time.perf_counter() - start,
        weight_bytes=sum(v.nbytes for _, v in nn.utils.tree_flatten(model.parameters())),
    )
    log.info(
        "loaded %s from %s in %.1fs: %s, context %d; %s",
        name, path, loaded.load_seconds, dtype, loaded.context_window, platform.describe(device),
    )
    return loaded


def describe_dtype(model: nn.Module, config: dict[str, Any]) -> str:
    quant = config.get("quantization") or config.get("quantization_config")
    if isinstance(quant, dict) and "bits" in quant:
        return f"{quant['bits']}-bit"
    for _, value in nn.utils.tree_flatten(model.parameters()):
        return str(value.dtype).removeprefix("mlx.core.")
    return "unknown"


def to_float32(model: nn.Module) -> nn.Module:
    """Dequantize and upcast: with OpenBLAS, float32 matmuls beat quantized kernels on CPU."""
    model = dequantize_model(model)
    model.set_dtype(mx.float32)
    return model

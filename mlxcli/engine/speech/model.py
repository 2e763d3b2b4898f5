"""Speech-to-text model directories: Whisper as mlx-whisper lays it out (``config.json`` with ``n_mels``,
``n_audio_ctx``, ...; ``weights.safetensors`` or ``weights.npz``), which the ``mlx-community/whisper-*``
repos and our CTranslate2 conversions (``mlxcli pull whisper-base``) both are.

The tokenizer is the directory's ``tokenizer.json``; the mlx-community repos ship none, so pulling one
also fetches the tokenizer of the matching OpenAI repo (models/speech.py) and it is read from there.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import mlx.core as mx
import mlx.nn as nn

from mlxcli.core.errors import ModelError
from mlxcli.engine import platform
from mlxcli.engine.loading import LoadedModel
from mlxcli.engine.speech.tokenizer import WhisperTokenizer
from mlxcli.engine.speech.whisper import Whisper, WhisperConfig, load_weights
from mlxcli.models.speech import WEIGHT_FILES, is_whisper, tokenizer_file

log = logging.getLogger("mlxcli.engine")


def detect(config: dict[str, Any]) -> bool:
    return is_whisper(config)


def setup(path: Path, config: dict[str, Any]) -> tuple[WhisperConfig, WhisperTokenizer]:
    """What requests are read with: the model's dimensions and its tokenizer (no weights: cheap)."""
    if "n_audio_ctx" not in config:
        raise ModelError(f"{path}: a Hugging Face transformers Whisper layout; serve an MLX conversion "
                         "(mlx-community/whisper-*, or `mlxcli pull whisper-base`)")
    dims = WhisperConfig.from_dict(config)
    tokenizer = WhisperTokenizer(tokenizer_file(path, config))
    if tokenizer.timestamp_begin + 1501 != dims.n_vocab:
        raise ModelError(f"{path}: its tokenizer does not fit its {dims.n_vocab}-token vocabulary")
    return dims, tokenizer


def load(name: str, path: Path, config: dict[str, Any], dims: WhisperConfig, tokenizer: WhisperTokenizer) -> LoadedModel:
    """The weights, as float32 on the CPU (with the fast path, or when they are half precision: MLX's
    CPU has no fast half-precision matmul)."""
    start = time.perf_counter()
    file = next((path / f for f in WEIGHT_FILES if (path / f).is_file()), None)
    if file is None:
        raise ModelError(f"{path}: no Whisper weights ({' or '.join(WEIGHT_FILES)})")
    model = Whisper(dims)
    try:
        weights = mx.load(str(file))
        quant = config.get("quantization")
        if isinstance(quant, dict):
            nn.quantize(model, group_size=quant.get("group_size", 64), bits=quant.get("bits", 4),
                        class_predicate=lambda p, m: isinstance(m, (nn.Linear, nn.Embedding)) and f"{p}.scales" in weights)
        load_weights(model, weights)
    except ModelError:
        raise
    except Exception as exc:  # safetensors and npz readers raise many types for a broken file
        raise ModelError(f"cannot load the Whisper model {name!r} from {file}: {exc}") from exc
    dtype = f"{quant['bits']}-bit" if isinstance(quant, dict) else str(model.encoder.conv1.weight.dtype).removeprefix("mlx.core.")
    if mx.default_device().type == mx.cpu and (platform.current().fast_path or dtype != "float32"):
        from mlx_lm.utils import dequantize_model

        model = dequantize_model(model) if isinstance(quant, dict) else model
        model.set_dtype(mx.float32)
        dtype = dtype if dtype == "float32" else f"float32 (from {dtype})"
    mx.eval(model.parameters())
    loaded = LoadedModel(
        name=name,
        path=path,
        model=model,
        tokenizer=tokenizer,  # type: ignore[arg-type]
        config=config,
        context_window=dims.n_text_ctx,
        dtype=dtype,
        load_seconds=time.perf_counter() - start,
        weight_bytes=sum(v.nbytes for _, v in nn.utils.tree_flatten(model.parameters())),
    )
    log.info("loaded %s from %s in %.1fs: Whisper (%d+%d layers, %s), %s", name, path, loaded.load_seconds,
             dims.n_audio_layer, dims.n_text_layer, "multilingual" if dims.multilingual else "English-only", dtype)
    return loaded

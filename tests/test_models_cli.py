"""`mlxcli models list`, `mlxcli models rm` and `mlxcli ps`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mlxcli.cli import app
from mlxcli.engine.engine import EngineSettings, MlxEngine
from tests.support.models import scripted_model


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))  # an empty Hugging Face cache
    monkeypatch.delenv("MLXCLI_HOME", raising=False)
    return tmp_path / "home"


def install(home: Path, name: str, source: str = "gguf", size: int = 3000) -> Path:
    """A model directory as `mlxcli pull` leaves it: files, then the marker."""
    path = home / "models" / name
    path.mkdir(parents=True)
    (path / "model.safetensors").write_bytes(b"\0" * size)
    (path / "mlxcli.json").write_text(json.dumps({"format": 1, "name": name, "source": source}))
    return path


def run(*args: str, input: str | None = None):
    return CliRunner().invoke(app, list(args), input=input)


def test_list_shows_name_source_and_size(home):
    install(home, "tiny-a1b2c3d4", "gguf", 2_500_000)
    install(home, "smollm2-135m", "alias", 100_000_000)
    (home / "models" / "half-done").mkdir()  # no marker: an interrupted install is not listed
    result = run("models", "list", "--home", str(home))
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split() == ["NAME", "SOURCE", "SIZE", "PATH"]
    assert lines[1].split()[:4] == ["smollm2-135m", "alias", "100.0", "MB"]
    assert lines[2].split()[:4] == ["tiny-a1b2c3d4", "gguf", "2.5", "MB"]
    rows = [json.loads(line) for line in run("models", "list", "--home", str(home), "--json").output.splitlines()]
    assert [(r["name"], r["source"]) for r in rows] == [("smollm2-135m", "alias"), ("tiny-a1b2c3d4", "gguf")]
    assert rows[0]["size_bytes"] >= 100_000_000 and Path(rows[0]["path"]) == home / "models" / "smollm2-135m"


def test_list_with_nothing_installed(home):
    result = run("models", "list", "--home", str(home))
    assert result.exit_code == 0 and "mlxcli pull" in result.output


def test_rm_asks_first(home):
    path = install(home, "tiny")
    declined = run("models", "rm", "tiny", "--home", str(home), input="n\n")
    assert declined.exit_code == 1 and "Remove tiny" in declined.output and path.is_dir()
    accepted = run("models", "rm", "tiny", "--home", str(home), input="y\n")
    assert accepted.exit_code == 0 and not path.exists()
    assert "tiny" not in run("models", "list", "--home", str(home)).output


def test_rm_yes_skips_the_question(home):
    path = install(home, "tiny")
    result = run("models", "rm", "tiny", "--yes", "--home", str(home))
    assert result.exit_code == 0 and "Remove" not in result.output and not path.exists()


def test_rm_unknown_model(home):
    install(home, "tiny")
    result = run("models", "rm", "other", "--yes", "--home", str(home))
    assert result.exit_code == 1 and "not installed" in result.output


@pytest.mark.parametrize("name", ["{outside}", "../outside", "./tiny", "~", "tiny/../../outside"])
def test_rm_refuses_anything_outside_the_models_directory(home, tmp_path, name):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("precious")
    install(home, "tiny")
    result = run("models", "rm", name.format(outside=outside), "--yes", "--home", str(home))
    assert result.exit_code == 1 and "error:" in result.output
    assert (outside / "keep.txt").read_text() == "precious" and (home / "models" / "tiny").is_dir()


def test_rm_refuses_a_symlink_out_of_the_models_directory(home, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "mlxcli.json").write_text("{}")
    (home / "models").mkdir(parents=True)
    (home / "models" / "evil").symlink_to(outside, target_is_directory=True)
    result = run("models", "rm", "evil", "--yes", "--home", str(home))
    assert result.exit_code == 1 and (outside / "mlxcli.json").exists()


# ---- mlxcli ps ---------------------------------------------------------------------


def test_ps_shows_what_a_running_server_has_loaded(tokenizer_dir, serve):
    engine = MlxEngine(
        [
            scripted_model(tokenizer_dir, lambda p: "a", name="alpha", aliases=("a",), context_window=1024),
            scripted_model(tokenizer_dir, lambda p: "b", name="beta", context_window=512),
        ],
        EngineSettings(idle_unload=600),
    ).start()
    try:
        server = serve(engine)
        result = run("ps", "--url", server.url)
        assert result.exit_code == 0, result.output
        lines = result.output.splitlines()
        assert lines[0].split() == ["NAME", "KIND", "STATE", "SIZE", "CONTEXT", "ACTIVE", "LAST", "USED", "UNLOADS"]
        assert lines[1].split()[:3] == ["alpha", "chat", "loaded"] and "1024" in lines[1] and "in 9m" in lines[1]
        assert "beta" not in result.output  # configured, not loaded
        assert "queue: 0 waiting, 0 running" in result.output
        as_json = json.loads(run("ps", "--url", server.url, "--json").stdout)
        assert [m["name"] for m in as_json["models"]] == ["alpha"]
    finally:
        engine.stop(grace=1)


def test_ps_without_a_server_says_so():
    result = run("ps", "--url", "http://127.0.0.1:9")
    assert result.exit_code == 1 and "cannot reach an mlxcli server" in result.output

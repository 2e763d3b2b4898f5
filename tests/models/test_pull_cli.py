"""`mlxcli pull`: the model directory on stdout, progress and one-line errors on stderr."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlxcli.models.install import MARKER


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

"""Model names: what is accepted, what is refused, and when a name counts as a path."""

from __future__ import annotations

import subprocess
import sys

import pytest

from mlxcli.core.errors import InvalidRequest
from mlxcli.models import validate_model_name
from mlxcli.models.names import parse_name


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
    assert parse_name("org/model", allow_paths=True).kind == "path"
    assert parse_name("org/model", allow_paths=False).kind == "repo"


def test_non_string_names_are_refused():
    with pytest.raises(InvalidRequest):
        validate_model_name(None)  # type: ignore[arg-type]


def test_model_management_imports_without_mlx():
    """The CLI resolves and lists models without paying for MLX (only converting loads it)."""
    code = (
        "import sys, mlxcli.models, mlxcli.models.gguf\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('mlx', 'mlx_lm', 'huggingface_hub'))\n"
        "print(heavy)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]", result.stdout

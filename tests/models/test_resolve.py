"""Resolving names: local GGUF files (converted once, by path), MLX directories, what is missing."""

from __future__ import annotations

import json
import os

import pytest

from mlxcli.core.errors import InvalidRequest, ModelError
from mlxcli.models import LocalModel, gguf, pull, resolve_model, validate_model_name
from mlxcli.models.install import MARKER
from mlxcli.models.resolve import _gguf_install_name
from tests.models.helpers import count_conversions, leftovers, sha256


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
    a = _gguf_install_name(tmp_path / "a" / "../weird name;rm -rf ~.gguf")
    b = _gguf_install_name(tmp_path / "b" / "../weird name;rm -rf ~.gguf")
    assert a != b
    others = [_gguf_install_name(tmp_path / f) for f in ("....gguf", "_x.gguf", "--a--b..c-.gguf", "é.gguf")]
    for name in (a, b, *others):
        assert validate_model_name(name, allow_paths=False) == name


def test_local_mlx_directory_is_used_in_place(home, tiny_gguf_file, tmp_path):
    model_dir = tmp_path / "mlx-model"
    gguf.convert_gguf(tiny_gguf_file, model_dir)
    resolved = resolve_model(str(model_dir), home=home, download=False)
    assert resolved == LocalModel(str(model_dir.resolve()), model_dir.resolve(), "local")
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

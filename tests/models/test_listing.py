"""Listing installed models (complete ones only, with sizes) and removing them safely."""

from __future__ import annotations

import pytest

from mlxcli.core.errors import InvalidRequest, ModelError
from mlxcli.models import list_local_models, pull, remove_local_model, resolve_model
from tests.models.helpers import leftovers


def test_list_and_remove(home, tiny_alias, tiny_gguf_file, tmp_path):
    alias = pull("tiny", home=home)
    converted = pull(str(tiny_gguf_file), home=home)
    (home / "models" / "stray-dir").mkdir()  # no marker: not a model
    listed = {m.name: m for m in list_local_models(home, include_hf=False)}
    assert set(listed) == {"tiny", converted.name}
    assert listed["tiny"].source == "alias" and listed[converted.name].source == "gguf"
    assert listed["tiny"].size > (alias.path / "model.safetensors").stat().st_size
    assert listed["tiny"].path == alias.path and listed[converted.name].path == converted.path

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

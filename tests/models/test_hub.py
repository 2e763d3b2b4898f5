"""Hugging Face repos, against a fake hub on loopback: only model files, no network once pulled."""

from __future__ import annotations

import pytest

from mlxcli.core.errors import InvalidRequest, ModelError
from mlxcli.models import gguf, list_local_models, pull, remove_local_model, resolve_model
from tests.fakehub import FakeHub
from tests.models.ggufs import build_tiny_gguf

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
    gguf.convert_gguf(build_tiny_gguf(tmp_path / "tiny.gguf").path, model_dir)
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
    listed = [m for m in list_local_models(home) if m.source == "hf"]
    assert [m.name for m in listed] == ["tiny-org/tiny-llama"]
    assert listed[0].path == resolved.path and listed[0].size >= expected_bytes
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


def test_an_embedding_repo_is_pulled_with_its_pooling_config_and_served(hf_env, tiny_bert_dir, home):
    """sentence-transformers' layout: the pooling config lives in a subfolder (1_Pooling/config.json)."""
    from mlxcli.core.embeddings import EmbeddingRequest
    from mlxcli.engine.engine import MlxEngine
    from mlxcli.engine.kinds import served_model
    from mlxcli.engine.settings import EngineSettings

    files = {str(p.relative_to(tiny_bert_dir)): p.read_bytes() for p in tiny_bert_dir.rglob("*") if p.is_file()}
    hf_env.add_repo("tiny-org/tiny-bge", {**files, "pytorch_model.bin": b"pickle!" * 10})
    resolved = pull("tiny-org/tiny-bge", home=home)
    assert (resolved.path / "1_Pooling" / "config.json").is_file() and not (resolved.path / "pytorch_model.bin").exists()
    engine = MlxEngine([served_model(resolved.name, resolved.path, EngineSettings())], EngineSettings()).start()
    try:
        assert len(engine.embed(EmbeddingRequest(["hello"])).result(timeout=60).vectors[0]) == 32
    finally:
        engine.stop(grace=1)

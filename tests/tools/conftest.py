"""Scripted models with tool-capable chat templates, as engines and as running servers.

``tool_engine(respond, calls=..., thinking=..., single_token_markers=...)`` serves a
scripted model (its reply is ``respond(prompt_text)``) whose tokenizer is SmolLM2's
with a Qwen3-style template (tests/support/tool_models.py).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from mlxcli.engine.engine import EngineSettings, MlxEngine
from mlxcli.engine.settings import ModelSpec
from tests.support.models import scripted_model
from tests.support.tool_models import chat_template, make_tool_tokenizer_dir


@pytest.fixture(scope="session")
def tool_tokenizer_dir(tokenizer_dir: Path, tmp_path_factory):
    """Factory (cached): the tokenizer directory for a template kind."""
    made: dict[tuple, Path] = {}

    def make(calls: str = "json", thinking: str = "optional", single_token_markers: bool = False) -> Path:
        key = (calls, thinking, single_token_markers)
        if key not in made:
            dst = tmp_path_factory.mktemp(f"tok-{calls}-{thinking}-{'single' if single_token_markers else 'split'}")
            made[key] = make_tool_tokenizer_dir(tokenizer_dir, dst, chat_template(calls, thinking), single_token_markers=single_token_markers)
        return made[key]

    return make


@pytest.fixture
def tool_engine(tool_tokenizer_dir, run_engine):
    """Factory: a started engine serving a scripted model with a tool-capable template."""

    def make(
        respond,
        *,
        calls: str = "json",
        thinking: str = "optional",
        single_token_markers: bool = False,
        settings: EngineSettings | None = None,
        spec: ModelSpec | None = None,
        tokenizer_dir: Path | None = None,
    ) -> MlxEngine:
        directory = tokenizer_dir or tool_tokenizer_dir(calls, thinking, single_token_markers)
        model = scripted_model(directory, respond, spec=spec)
        return run_engine([model], settings or EngineSettings(temperature=0.0))

    return make


@pytest.fixture
def tool_server(tool_engine, serve):
    """Factory: a running server for ``tool_engine(respond, **options)``."""

    def make(respond, **options):
        return serve(tool_engine(respond, **options))

    return make

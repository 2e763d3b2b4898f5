"""gpt-oss's Harmony format without its weights: scripted engines and servers with a Harmony tokenizer
and template (tests/support/harmony.py), and a tiny random gpt_oss model directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.harmony import make_harmony_tokenizer_dir, make_tiny_gpt_oss_dir
from tests.tools.conftest import tool_engine, tool_server, tool_tokenizer_dir  # noqa: F401


@pytest.fixture(scope="session")
def harmony_tokenizer_dir(tokenizer_dir: Path, tmp_path_factory) -> Path:
    return make_harmony_tokenizer_dir(tokenizer_dir, tmp_path_factory.mktemp("harmony-tokenizer"))


@pytest.fixture(scope="session")
def gpt_oss_dir(harmony_tokenizer_dir: Path, tmp_path_factory) -> Path:
    return make_tiny_gpt_oss_dir(harmony_tokenizer_dir, tmp_path_factory.mktemp("tiny-gpt-oss"))


@pytest.fixture
def harmony_engine(tool_engine, harmony_tokenizer_dir):  # noqa: F811 (the fixture imported above, by its name)
    """Factory: a started engine whose scripted model answers ``respond(prompt_text)`` in Harmony."""
    return lambda respond, **options: tool_engine(respond, tokenizer_dir=harmony_tokenizer_dir, **options)


@pytest.fixture
def harmony_server(harmony_engine, serve):
    """Factory: a running server (``settings``, ``store``) for ``harmony_engine(respond, **options)``."""
    return lambda respond, settings=None, store=None, **options: serve(harmony_engine(respond, **options), settings, store)

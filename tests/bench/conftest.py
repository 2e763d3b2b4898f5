"""Tool-capable scripted servers (tests/tools) for the bench's HTTP target tests."""

from tests.tools.conftest import tool_engine, tool_server, tool_tokenizer_dir  # noqa: F401

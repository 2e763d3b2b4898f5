"""Servers for the client tests: the scripted model behind a real `mlxcli serve` app (see tests/conftest.py),
with the tool-capable templates of tests/tools for tool calls and reasoning."""

from tests.tools.conftest import tool_engine, tool_server, tool_tokenizer_dir  # noqa: F401

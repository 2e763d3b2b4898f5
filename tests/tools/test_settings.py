"""The serve settings of this layer: --tool-call-parser, --reasoning, per-model overrides."""

from __future__ import annotations

import shutil

import pytest
import yaml
from typer.testing import CliRunner

from mlxcli.cli import app
from mlxcli.core.errors import ModelError
from mlxcli.engine.kinds import served_model
from mlxcli.engine.settings import EngineSettings, ModelSpec


@pytest.fixture
def model_dir(tool_tokenizer_dir, tokenizer_dir, tmp_path):
    """A model directory (config.json; weights are not needed to build a served model) with a Qwen3-style template."""
    directory = tmp_path / "qwenish"
    shutil.copytree(tool_tokenizer_dir("json"), directory)
    shutil.copy(tokenizer_dir / "config.json", directory / "config.json")
    return directory


def test_server_wide_parser_and_the_model_s_own(model_dir):
    assert served_model("m", model_dir, EngineSettings()).format.tools.parser == "json_tools"  # detected
    assert served_model("m", model_dir, EngineSettings(tool_call_parser="glm47")).format.tools.parser == "glm47"
    spec = ModelSpec(model=str(model_dir), tool_call_parser="qwen3_coder", reasoning_parser="none")
    fmt = served_model("m", model_dir, EngineSettings(tool_call_parser="glm47"), spec).format
    assert fmt.tools.parser == "qwen3_coder" and fmt.thinking is None  # the model's own setting wins
    with pytest.raises(ModelError, match="unknown tool-call parser 'nope'"):
        served_model("m", model_dir, EngineSettings(tool_call_parser="nope"))


def test_serve_flags(model_dir, tmp_path, monkeypatch):
    for var in ("MLXCLI_TOOL_CALL_PARSER", "MLXCLI_REASONING"):
        monkeypatch.delenv(var, raising=False)
    runner = CliRunner()
    printed = runner.invoke(app, ["serve", "--tool-call-parser", "glm47", "--reasoning", "strip", "--print-config"])
    assert printed.exit_code == 0, printed.output
    assert {k: v for k, v in yaml.safe_load(printed.output)["server"].items() if k in ("tool_call_parser", "reasoning")} == {
        "tool_call_parser": "glm47", "reasoning": "strip"
    }
    monkeypatch.setenv("MLXCLI_REASONING", "separate")
    assert yaml.safe_load(runner.invoke(app, ["serve", "--print-config"]).output)["server"]["reasoning"] == "separate"
    bad = runner.invoke(app, ["serve", "--reasoning", "hide", "--print-config"])
    assert bad.exit_code != 0 and "separate, strip" in bad.output
    # An unknown parser stops start-up with a one-line error, before any weights load.
    store = ["--store-path", str(tmp_path / "store.db"), "--conversation-dir", str(tmp_path / "logs")]
    failed = runner.invoke(app, ["serve", "--model", str(model_dir), "--tool-call-parser", "nope", *store])
    assert failed.exit_code == 1 and "unknown tool-call parser 'nope'" in failed.output

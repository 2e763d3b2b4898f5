"""Which models get the Harmony format: gpt-oss by its model_type or its tokenizer, or by override; its stop tokens."""

from __future__ import annotations

import json
import shutil

import pytest
import yaml
from typer.testing import CliRunner

from mlxcli.cli import app
from mlxcli.engine import formats
from mlxcli.engine.kinds import served_model
from mlxcli.engine.settings import EngineSettings, ModelSpec


def test_a_harmony_tokenizer_and_template_are_detected(harmony_tokenizer_dir, tokenizers):
    fmt = formats.detect(tokenizers(harmony_tokenizer_dir))
    assert fmt.headers is not None and fmt.tools.parser == "harmony" and fmt.thinking is None
    assert (fmt.reasoning_key, fmt.efforts, fmt.one_call_per_message) == ("thinking", ("low", "medium", "high"), True)
    assert formats.describe(fmt) == "tool calls: harmony; reasoning: the analysis channel"


def test_model_type_alone_is_enough(tokenizer_dir, tokenizers):
    plain = tokenizers(tokenizer_dir)  # SmolLM2's: no Harmony tokens, no Harmony template
    assert formats.detect(plain).headers is None
    assert formats.detect(plain, model_type="gpt_oss").headers is not None


@pytest.mark.parametrize(
    "tool_call_parser, reasoning_parser, harmony, tools, reasoning",
    [
        ("harmony", None, True, True, True),
        (None, "harmony", True, True, True),
        ("none", None, True, False, True),  # channels still parsed; calls dropped, and a request with tools refused
        (None, "none", True, True, False),  # the analysis channel dropped
        ("json_tools", None, False, True, False),  # another format named: it wins
    ],
)
def test_overrides(harmony_tokenizer_dir, tokenizer_dir, tokenizers, tool_call_parser, reasoning_parser, harmony, tools, reasoning):
    fmt = formats.detect(tokenizers(harmony_tokenizer_dir), tool_call_parser, reasoning_parser)
    assert (fmt.headers is not None, fmt.tools is not None) == (harmony, tools)
    assert (fmt.headers is not None and formats.REASONING in fmt.headers.kinds.values()) == reasoning
    if "harmony" in (tool_call_parser, reasoning_parser):  # on any model
        assert formats.detect(tokenizers(tokenizer_dir), tool_call_parser, reasoning_parser).headers is not None


def test_a_served_gpt_oss_stops_at_call_and_return(gpt_oss_dir):
    config = json.loads((gpt_oss_dir / "config.json").read_text())
    model = served_model("gpt-oss", gpt_oss_dir, EngineSettings())
    vocab = model.tokenizer.get_vocab()
    assert config["eos_token_id"] == vocab["<|return|>"]  # the config names <|return|> only, as gpt-oss's does
    assert {vocab["<|return|>"], vocab["<|call|>"]} <= model.stop_tokens
    assert vocab["<|call|>"] not in model.tokenizer.eos_token_ids  # the tokenizer it was given is left as it was
    assert model.format.headers is not None


def test_model_type_detection_through_the_registry(gpt_oss_dir, tokenizer_dir, tmp_path):
    """A gpt_oss directory whose tokenizer is not recognisable still gets Harmony, from its config."""
    directory = tmp_path / "gpt-oss-plain-tokenizer"
    shutil.copytree(tokenizer_dir, directory)
    config = json.loads((gpt_oss_dir / "config.json").read_text())
    (directory / "config.json").write_text(json.dumps(config))
    assert served_model("m", directory, EngineSettings()).format.headers is not None
    spec = ModelSpec(model=str(directory), tool_call_parser="json_tools")
    assert served_model("m", directory, EngineSettings(), spec).format.headers is None


def test_the_reasoning_parser_flag(gpt_oss_dir, tokenizer_dir, monkeypatch):
    monkeypatch.delenv("MLXCLI_REASONING_PARSER", raising=False)
    printed = CliRunner().invoke(app, ["serve", "--reasoning-parser", "harmony", "--print-config"])
    assert printed.exit_code == 0, printed.output
    assert yaml.safe_load(printed.output)["server"]["reasoning_parser"] == "harmony"
    assert served_model("m", tokenizer_dir, EngineSettings(reasoning_parser="harmony")).format.headers is not None
    with pytest.raises(formats.ModelError, match="unknown reasoning parser 'nope'.*harmony"):
        served_model("m", tokenizer_dir, EngineSettings(reasoning_parser="nope"))

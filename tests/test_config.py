"""The serve config file: YAML and TOML with the same keys, checks, and round trips through `serve --print-config`."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from mlxcli.cli import app
from mlxcli.config import ConfigError, ServeConfig, dump_config, load_config
from mlxcli.core.request import Sampling
from mlxcli.engine.settings import ModelSpec

YAML = """
models:
  - model: smollm2-135m
    served_name: small
    aliases: [tiny, default]
    temperature: 0.2
    top_p: 0.9
    max_tokens: 256
    context_length: 1024
    chat_template: templates/chatml.jinja
    tool_call_parser: json_tools
    reasoning_parser: think
    context_overflow: summarize
    context_keep_turns: 8
  - model: ./models/other
    served_name: other
    speculative: ngram
    draft_model: ./models/draft
  - mlx-community/Qwen3-0.6B-4bit
  - model: Tongyi-MAI/Z-Image-Turbo
    quantize: 4
    image_preset: z-image-turbo
server:
  port: 9001
  max-loaded-models: 2
  idle_unload: 300
  cors_origins: [http://a.test, http://b.test]
  chat_template: default.jinja
"""

TOML = """
[[models]]
model = "smollm2-135m"
served_name = "small"
aliases = ["tiny", "default"]
temperature = 0.2
top_p = 0.9
max_tokens = 256
context_length = 1024
chat_template = "templates/chatml.jinja"
tool_call_parser = "json_tools"
reasoning_parser = "think"
context_overflow = "summarize"
context_keep_turns = 8

[[models]]
model = "./models/other"
served_name = "other"
speculative = "ngram"
draft_model = "./models/draft"

[[models]]
model = "mlx-community/Qwen3-0.6B-4bit"

[[models]]
model = "Tongyi-MAI/Z-Image-Turbo"
quantize = 4
image_preset = "z-image-turbo"

[server]
port = 9001
max-loaded-models = 2
idle_unload = 300
cors_origins = ["http://a.test", "http://b.test"]
chat_template = "default.jinja"
"""


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_yaml_is_read_with_paths_relative_to_the_file(tmp_path):
    config = load_config(write(tmp_path / "conf" / "serve.yaml", YAML))
    base = (tmp_path / "conf").resolve()
    assert config.models == [
        ModelSpec(
            model="smollm2-135m",
            served_name="small",
            aliases=["tiny", "default"],
            sampling=Sampling(temperature=0.2, top_p=0.9, max_tokens=256),
            context_length=1024,
            chat_template=str(base / "templates" / "chatml.jinja"),
            tool_call_parser="json_tools",
            reasoning_parser="think",
            context_overflow="summarize",
            context_keep_turns=8,
        ),
        ModelSpec(model=str(base / "models" / "other"), served_name="other", speculative="ngram", draft_model=str(base / "models" / "draft")),
        ModelSpec(model="mlx-community/Qwen3-0.6B-4bit"),
        ModelSpec(model="Tongyi-MAI/Z-Image-Turbo", quantize=4, image_preset="z-image-turbo"),
    ]
    assert config.server == {
        "port": 9001,
        "max_loaded_models": 2,
        "idle_unload": 300,
        "cors_origins": ["http://a.test", "http://b.test"],
        "chat_template": str(base / "default.jinja"),
    }


def test_toml_with_the_same_keys_reads_the_same(tmp_path):
    assert load_config(write(tmp_path / "serve.toml", TOML)) == load_config(write(tmp_path / "serve.yaml", YAML))


def test_dump_reads_back_equal(tmp_path):
    config = load_config(write(tmp_path / "serve.yaml", YAML))
    again = load_config(write(tmp_path / "elsewhere" / "dumped.yml", dump_config(config)))
    assert again == config
    assert load_config(write(tmp_path / "empty.yaml", "")) == ServeConfig()


@pytest.mark.parametrize(
    "text, message",
    [
        ("models:\n  - model: a\n    temprature: 1\n", "models[0]: unknown key 'temprature'; did you mean 'temperature'?"),
        ("models:\n  - served_name: x\n", "models[0]: 'model' is required"),
        ("models:\n  - model: a\n    temperature: hot\n", "models[0].temperature: expected a number"),
        ("models:\n  - model: a\n    temperature: 3\n", "models[0].temperature: must be between 0 and 2"),
        ("models:\n  - model: a\n    max_tokens: 1.5\n", "models[0].max_tokens: expected an integer"),
        ("models:\n  - model: a\n    context_length: true\n", "models[0].context_length: expected an integer"),
        ("models:\n  - model: a\n    context_length: 4\n", "models[0].context_length: must be at least 16"),
        ("models:\n  - model: a\n    aliases: [x, 3]\n", "models[0].aliases[1]: expected a non-empty string"),
        ("models:\n  - model: a\n    context_overflow: drop\n", "models[0].context_overflow: must be one of error, truncate, summarize"),
        ("models:\n  - model: a\n    context_keep_turns: 0\n", "models[0].context_keep_turns: must be at least 1"),
        ("models:\n  - model: a\n    quantize: 2\n", "models[0].quantize: must be one of 3, 4, 5, 6, 8 (bits)"),
        ("models:\n  - model: a\n    speculative: draft\n", "models[0].speculative: must be one of ngram, off"),
        ("models: {model: a}\n", "'models' must be a list"),
        ("server: [1]\n", "'server' must be a mapping"),
        ("modles: []\n", "unknown key 'modles'; did you mean 'models'?"),
        ("- a\n", "expected a mapping"),
        ("models: [\n", "is not valid YAML"),
    ],
)
def test_mistakes_are_named(tmp_path, text, message):
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path / "bad.yaml", text))
    assert message in str(err.value)


def test_invalid_toml_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="is not valid TOML"):
        load_config(write(tmp_path / "bad.toml", "[[models]\n"))
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.yaml")


# ---- through `mlxcli serve` ------------------------------------------------------


def print_config(*args: str) -> dict:
    result = CliRunner().invoke(app, ["serve", *args, "--print-config"])
    assert result.exit_code == 0, result.output
    return yaml.safe_load(result.output)


def test_serve_reads_the_file_and_flags_override_it(tmp_path, monkeypatch):
    for var in ("MLXCLI_PORT", "MLXCLI_MODEL", "MLXCLI_HOST", "MLXCLI_MAX_LOADED_MODELS"):
        monkeypatch.delenv(var, raising=False)
    path = write(tmp_path / "serve.toml", TOML)
    effective = print_config("--config", str(path))
    assert [m.get("served_name") for m in effective["models"]] == ["small", "other", None, None]
    assert effective["models"][-1]["quantize"] == 4
    assert effective["server"]["port"] == 9001 and effective["server"]["max_loaded_models"] == 2
    assert effective["server"]["cors_origins"] == "http://a.test,http://b.test"
    assert effective["server"]["host"] == "127.0.0.1"  # not in the file: the flag's default

    overridden = print_config("--config", str(path), "--port", "7000", "--model", "smollm2-135m")
    assert overridden["server"]["port"] == 7000 and overridden["server"]["max_loaded_models"] == 2
    assert overridden["models"] == [{"model": "smollm2-135m"}]  # --model replaces the file's models
    monkeypatch.setenv("MLXCLI_PORT", "7001")
    assert print_config("--config", str(path))["server"]["port"] == 7001  # environment variables count as flags


def test_printed_config_round_trips(tmp_path):
    first = CliRunner().invoke(app, ["serve", "--config", str(write(tmp_path / "serve.yaml", YAML)), "--print-config"])
    assert first.exit_code == 0, first.output
    again = CliRunner().invoke(app, ["serve", "--config", str(write(tmp_path / "out" / "effective.yaml", first.output)), "--print-config"])
    assert again.exit_code == 0 and again.output == first.output


def test_serve_refuses_unknown_server_settings_and_bad_values(tmp_path):
    result = CliRunner().invoke(app, ["serve", "--config", str(write(tmp_path / "a.yaml", "server:\n  prot: 1\n")), "--print-config"])
    message = " ".join(result.output.replace("│", " ").split())  # unwrap the error box
    assert result.exit_code != 0 and "unknown server setting 'prot'" in message and "port" in message
    result = CliRunner().invoke(app, ["serve", "--config", str(write(tmp_path / "b.yaml", "server:\n  threads: 0\n")), "--print-config"])
    assert result.exit_code != 0 and "--threads" in result.output


def test_batching_and_prompt_cache_settings_are_checked(tmp_path):
    server = print_config("--max-batch", "4", "--prompt-cache-bytes", "1GiB", "--kv-bits", "8")["server"]
    assert (server["max_batch"], int(server["prompt_cache_bytes"]), server["kv_bits"]) == (4, 1 << 30, 8)
    path = write(tmp_path / "s.yaml", "server:\n  prompt_cache_bytes: 500MB\n  max_batch: 2\n")
    server = print_config("--config", str(path))["server"]
    assert (int(server["prompt_cache_bytes"]), server["max_batch"]) == (500_000_000, 2)  # MB: powers of 1000
    server = print_config("--context-overflow", "truncate", "--context-keep-turns", "4")["server"]
    assert (server["context_overflow"], server["context_keep_turns"]) == ("truncate", 4)
    server = print_config("--speculative", "ngram", "--draft-model", "smollm2-135m", "--speculative-depth", "12")["server"]
    assert (server["speculative"], server["draft_model"], server["speculative_depth"]) == ("ngram", "smollm2-135m", 12)
    for bad in (["--kv-bits", "7"], ["--prompt-cache-bytes", "lots"], ["--max-batch", "0"], ["--context-overflow", "drop"],
                ["--context-keep-turns", "0"], ["--speculative", "draft"], ["--speculative-depth", "0"], ["--speculative-depth", "33"]):
        result = CliRunner().invoke(app, ["serve", *bad, "--print-config"])
        assert result.exit_code == 2 and bad[0] in result.output, result.output


def test_model_aliases_from_flags_and_the_file(tmp_path):
    server = print_config("--model-alias", "claude-*=smollm2-135m", "--model-alias", "gpt-4o=smollm2-135m")["server"]
    assert server["model_alias"] == ["claude-*=smollm2-135m", "gpt-4o=smollm2-135m"]
    path = write(tmp_path / "a.yaml", "models:\n  - model: smollm2-135m\n    aliases: ['claude-*']\nserver:\n  model_alias: ['o3*=smollm2-135m']\n")
    effective = print_config("--config", str(path))
    assert effective["models"][0]["aliases"] == ["claude-*"] and effective["server"]["model_alias"] == ["o3*=smollm2-135m"]
    result = CliRunner().invoke(app, ["serve", "--model-alias", "claude-haiku", "--print-config"])
    assert result.exit_code == 2 and "NAME=MODEL" in result.output, result.output

"""`mlxcli launch`: what each agent is given (--print-env), against a running server or one it starts.

The agents themselves run in tests/test_agent_clients.py (slow: they install from npm).
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from mlxcli.cli import app
from tests.support.models import scripted_model
from tests.support.process import free_port

REPO = Path(__file__).resolve().parent.parent
WINDOW = 12345
CLEAN = {"MLXCLI_API_KEY": None, "MLXCLI_MODEL": None, "MLXCLI_URL": None}  # a user's settings are not the test's


@pytest.fixture
def server(tokenizer_dir, run_engine, serve):
    from mlxcli.engine.engine import EngineSettings

    model = scripted_model(tokenizer_dir, lambda prompt: "Hi.", name="coder", aliases=("qwen3-coder",), context_window=WINDOW)
    return serve(run_engine([model], EngineSettings(temperature=0.0)))


def printed(*args: str) -> tuple[dict[str, str], list[str]]:
    """(the environment, the command) `mlxcli launch --print-env` prints."""
    result = CliRunner().invoke(app, ["launch", "--print-env", *args], env=CLEAN)
    assert result.exit_code == 0, result.output
    *env, command = result.stdout.strip().splitlines()
    return dict(line.split("=", 1) for line in env), shlex.split(command)


def test_claude_code_gets_every_tier_the_window_and_no_prompt_breakers(server):
    env, command = printed("claude", "--url", server.url + "/v1", "-m", "qwen3-coder", "--", "-p", "fix it")
    assert env["ANTHROPIC_BASE_URL"] == server.url  # the root: Claude Code adds /v1/messages itself
    for tier in ("OPUS", "SONNET", "HAIKU"):
        assert env[f"ANTHROPIC_DEFAULT_{tier}_MODEL"] == "coder"  # the alias resolved to the served name
    assert env["CLAUDE_CODE_SUBAGENT_MODEL"] == "coder"
    assert env["CLAUDE_CODE_AUTO_COMPACT_WINDOW"] == str(WINDOW)
    assert env["CLAUDE_CODE_ATTRIBUTION_HEADER"] == "0" and env["CLAUDE_CODE_TOTAL_TOKENS_REMINDER"] == "off"
    assert env["ANTHROPIC_AUTH_TOKEN"] and env["ANTHROPIC_API_KEY"] == "''"
    assert command == ["claude", "--model", "coder", "-p", "fix it"]


def test_codex_gets_a_responses_provider_and_the_window(server):
    env, command = printed("codex", "--url", server.url, "--", "exec", "fix it")
    overrides = dict(command[i + 1].split("=", 1) for i, arg in enumerate(command) if arg == "-c")
    assert overrides == {
        "model_provider": '"mlxcli"',
        "model_providers.mlxcli.name": '"mlxcli"',
        "model_providers.mlxcli.base_url": f'"{server.url}/v1"',
        "model_providers.mlxcli.wire_api": '"responses"',
        "model_providers.mlxcli.env_key": '"MLXCLI_AGENT_KEY"',
        "model_context_window": str(WINDOW),
    }
    assert env["MLXCLI_AGENT_KEY"]
    assert command[0] == "codex" and command[-4:] == ["-m", "coder", "exec", "fix it"]


def test_opencode_gets_a_provider_with_the_window_as_its_default_model(server):
    env, command = printed("opencode", "--url", server.url, "--", "run", "fix it")
    config = json.loads(shlex.split(env["OPENCODE_CONFIG_CONTENT"])[0])
    provider = config["provider"]["mlxcli"]
    assert config["model"] == "mlxcli/coder"
    assert provider["options"]["baseURL"] == server.url + "/v1"
    assert provider["models"]["coder"]["limit"]["context"] == WINDOW
    assert command == ["opencode", "run", "fix it"]


def test_a_model_the_server_does_not_serve_is_refused(server):
    result = CliRunner().invoke(app, ["launch", "claude", "--url", server.url, "-m", "gpt-9", "--print-env"], env=CLEAN)
    assert result.exit_code == 1 and "does not serve a model named 'gpt-9'" in result.output


def test_a_url_where_no_server_answers_is_refused_not_replaced():
    url = f"http://127.0.0.1:{free_port()}"
    result = CliRunner().invoke(app, ["launch", "codex", "--url", url, "--print-env"], env=CLEAN)
    assert result.exit_code == 1 and f"no mlxcli server answers at {url}" in result.output


def test_an_unknown_agent_is_refused():
    result = CliRunner().invoke(app, ["launch", "cursor", "--print-env"], env=CLEAN)
    assert result.exit_code == 1 and "unknown agent 'cursor'" in result.output


@pytest.mark.slow  # mlxcli launch and the server it starts, in subprocesses
def test_without_a_server_launch_starts_one_and_stops_it(test_home, tmp_path):
    """The scripted agent server stands in for `mlxcli serve` (tests/support/scripted_launch.py)."""
    env = {**os.environ, "MLXCLI_HOME": str(test_home), "MLXCLI_STORE_PATH": str(tmp_path / "store.db"), "PYTHONPATH": str(REPO)}
    for name in CLEAN:
        env.pop(name, None)
    run = subprocess.run(
        [sys.executable, "-m", "tests.support.scripted_launch", "claude", "--print-env"],
        env=env, capture_output=True, text=True, timeout=300, cwd=REPO,
    )
    assert run.returncode == 0, run.stderr
    started = next(line for line in run.stderr.splitlines() if "starting mlxcli serve on" in line)
    url = started.split("serve on ")[1].split()[0]
    printed_env = dict(line.split("=", 1) for line in run.stdout.splitlines()[:-1])
    assert printed_env["ANTHROPIC_BASE_URL"] == url and printed_env["CLAUDE_CODE_AUTO_COMPACT_WINDOW"] == "65536"
    with pytest.raises(httpx.ConnectError):  # stopped when launch was done
        httpx.get(url + "/health", timeout=5)
    log = Path(started.split("(log: ")[1].rstrip(") ."))
    assert "received SIGTERM" in log.read_text() and "GET /v1/models" in log.read_text()


def test_a_server_that_wants_a_key_gets_it_from_launch_and_the_agent(tokenizer_dir, run_engine, serve):
    from mlxcli.engine.engine import EngineSettings
    from mlxcli.server.settings import ServerSettings

    model = scripted_model(tokenizer_dir, lambda prompt: "Hi.", context_window=WINDOW)
    keyed = serve(run_engine([model], EngineSettings(temperature=0.0)), ServerSettings(port=0, api_keys=["sk-local"]))
    env, _ = printed("codex", "--url", keyed.url, "--api-key", "sk-local")
    assert env["MLXCLI_AGENT_KEY"] == "sk-local"
    result = CliRunner().invoke(app, ["launch", "--print-env", "codex", "--url", keyed.url], env=CLEAN)
    assert result.exit_code == 1 and "401" in result.output

"""`mlxcli chat -p` and piped input: for scripts. Only the answer on stdout; errors on stderr, non-zero.

Most cases run the command in-process against a real server with the scripted model (``--url``);
the ones about real pipes and the in-process engine run `python -m mlxcli` as a subprocess.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from mlxcli.cli import app
from mlxcli.store import ConversationStore, StoreSettings

CODE_ANSWER = "Here you go:\n\n```python\ndef add(a, b):\n    return a + b\n```\n\nCall `add(1, 2)`."


@pytest.fixture
def server(chat_engine, serve):
    return serve(chat_engine)


def chat(home, *args, input: str | None = None):
    return CliRunner().invoke(app, ["chat", *args], input=input, env={"MLXCLI_HOME": str(home)})


def test_prompt_argument(server, tmp_path):
    result = chat(tmp_path, "--url", server.url, "-p", "hello")
    assert (result.exit_code, result.stdout, result.stderr) == (0, "Reply 1: hello\n", "")


def test_stdin_is_added_to_the_prompt(server, tmp_path):
    result = chat(tmp_path, "--url", server.url, "-p", "Summarize:", input="The text\nto summarize.\n")
    assert result.exit_code == 0, result.output
    assert result.stdout == "Reply 1: Summarize: /  / The text / to summarize.\n"


def test_stdin_alone(server, tmp_path):
    result = chat(tmp_path, "--url", server.url, "--system", "Talk like a pirate.", input="hello from a pipe\n")
    assert (result.exit_code, result.stdout) == (0, "Arr! Reply 1: hello from a pipe\n")


def test_json_result_and_the_stored_conversation(server, tmp_path):
    result = chat(tmp_path, "--url", server.url, "-p", "hello", "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert set(out) == {
        "model", "content", "reasoning", "finish_reason", "usage", "time_to_first_token", "tokens_per_second",
        "conversation_id", "turn_id",
    }
    assert (out["model"], out["content"], out["reasoning"], out["finish_reason"]) == ("scripted", "Reply 1: hello", None, "stop")
    assert out["usage"]["completion_tokens"] > 1 and out["usage"]["prompt_tokens"] > 0
    assert out["time_to_first_token"] > 0 and out["tokens_per_second"] > 0
    exported = CliRunner().invoke(app, ["convo", "export", out["conversation_id"]], env={"MLXCLI_HOME": str(tmp_path)})
    turn = json.loads(exported.stdout)["turns"][0]
    assert (turn["id"], turn["source"], turn["input"][0]["content"], turn["output"][0]["content"]) == (
        out["turn_id"], "chat", "hello", "Reply 1: hello",
    )


def test_stats_go_to_stderr(server, tmp_path):
    result = chat(tmp_path, "--url", server.url, "-p", "hello", "--stats")
    assert result.exit_code == 0 and result.stdout == "Reply 1: hello\n"
    assert "tok/s" in result.stderr and "s to first token" in result.stderr


def test_no_store_keeps_nothing(server, tmp_path):
    result = chat(tmp_path, "--url", server.url, "-p", "hello", "--no-store", "--json")
    assert result.exit_code == 0 and json.loads(result.stdout)["conversation_id"] is None
    assert not (tmp_path / "conversations.db").exists()


def test_sampling_flags_reach_the_model(server, tmp_path):
    result = chat(tmp_path, "--url", server.url, "-p", "hello", "--max-tokens", "2", "--json", "--temperature", "0")
    out = json.loads(result.stdout)
    assert (out["finish_reason"], out["usage"]["completion_tokens"]) == ("length", 2)


@pytest.mark.parametrize(
    "args, input, code, message",
    [
        (["-p", ""], None, 2, "nothing to ask"),
        (["-p", "  \n"], "\n\n", 2, "nothing to ask"),
        (["-p", "break it"], None, 1, "error: generation failed"),
        (["-p", "word " * 3000], None, 1, "error: the server answered 400: This model's maximum context length"),
        (["-p", "hi", "--temperature", "5"], None, 2, "Invalid value for '--temperature'"),
    ],
)
def test_errors_exit_non_zero_with_a_message_on_stderr(server, tmp_path, args, input, code, message):
    result = chat(tmp_path, "--url", server.url, *args, input=input)
    assert result.exit_code == code, result.output
    assert message in result.stderr and "Traceback" not in result.output


def test_an_unreachable_server(tmp_path):
    result = chat(tmp_path, "--url", "http://127.0.0.1:9", "-p", "hi")
    assert result.exit_code == 1 and result.stdout == ""
    assert result.stderr == "error: cannot reach http://127.0.0.1:9: [Errno 111] Connection refused\n"


@pytest.mark.parametrize("api", ["chat", "responses", "anthropic", "ollama"])
def test_every_api(server, tmp_path, api):
    result = chat(tmp_path, "--url", server.url + "/v1/", "--api", api, "--system", "Talk like a pirate.", "-p", "hello")
    assert (result.exit_code, result.stdout, result.stderr) == (0, "Arr! Reply 1: hello\n", "")
    result = chat(tmp_path, "--url", server.url, "--api", api, "-p", "hello", "--max-tokens", "2", "--json")
    out = json.loads(result.stdout)
    assert (out["model"], out["finish_reason"], out["usage"]["completion_tokens"]) == ("scripted", "length", 2)
    assert out["usage"]["prompt_tokens"] > 0


@pytest.mark.parametrize("api", ["chat", "responses", "anthropic", "ollama"])
def test_reasoning_over_every_api(tool_server, tmp_path, api):
    from tests.tools.replies import REASONED, REASONED_ANSWER, THOUGHT

    server = tool_server(lambda prompt: REASONED)
    result = chat(tmp_path, "--url", server.url, "--api", api, "-p", "What is 2 + 2?", "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert (out["reasoning"], out["content"]) == (THOUGHT, REASONED_ANSWER)
    plain = chat(tmp_path, "--url", server.url, "--api", api, "-p", "What is 2 + 2?")
    assert plain.stdout == REASONED_ANSWER + "\n"  # a pipe gets the answer only


@pytest.mark.parametrize("api", ["responses", "anthropic", "ollama"])
def test_a_failure_or_refusal_over_the_other_apis(server, tmp_path, api):
    result = chat(tmp_path, "--url", server.url, "--api", api, "-p", "break it")
    assert result.exit_code == 1 and "error: generation failed" in result.stderr and "Traceback" not in result.output
    result = chat(tmp_path, "--url", server.url, "--api", api, "-p", "word " * 3000)
    assert result.exit_code == 1 and "error: the server answered 400: " in result.stderr


@pytest.mark.parametrize(
    "args, message",
    [
        (["--api", "responses", "--stop", "x", "--seed", "1"], "--seed, --stop cannot be sent over the OpenAI Responses API"),
        (["--api", "anthropic", "--min-p", "0.1"], "--min-p cannot be sent over the Anthropic Messages API"),
        (["--api", "grpc"], "'grpc' is not one of chat, responses, anthropic, ollama"),
    ],
)
def test_flags_an_api_cannot_carry_are_refused_at_once(server, tmp_path, args, message):
    result = chat(tmp_path, "--url", server.url, "-p", "hi", *args)
    assert result.exit_code == 2 and message in " ".join(result.output.replace("│", " ").split()), result.output


def test_api_goes_with_url(tmp_path):
    result = chat(tmp_path, "--api", "anthropic", "-p", "hi")
    assert result.exit_code == 2 and result.stderr == "error: --api goes with --url\n"


def test_a_failure_half_way_is_not_stored(server, tmp_path):
    result = chat(tmp_path, "--url", server.url, "-p", "break it")
    assert result.exit_code == 1
    with ConversationStore(StoreSettings.default(tmp_path), readonly=True) as store:
        assert store.conversations() == []


# ---- real pipes, and the in-process engine -----------------------------------------------


def run(home, *args, input: str = "") -> subprocess.CompletedProcess:
    env = {**os.environ, "MLXCLI_HOME": str(home), "TERM": "xterm-256color"}
    return subprocess.run(
        [sys.executable, "-m", "mlxcli", "chat", *args], input=input, env=env, capture_output=True, text=True, timeout=120
    )


@pytest.mark.slow  # mlxcli in a subprocess
def test_a_pipe_gets_the_raw_answer_without_escape_codes(server, tmp_path):
    result = run(tmp_path, "--url", server.url, "-p", "show code", "--stats")
    assert result.returncode == 0, result.stderr
    assert result.stdout == CODE_ANSWER + "\n"  # Markdown as written: nothing rendered, no colours
    assert "\x1b" not in result.stdout + result.stderr


@pytest.mark.slow  # mlxcli in a subprocess
def test_in_process_engine_with_a_model_directory(tiny_model_dir, tmp_path):
    result = run(tmp_path, "-m", str(tiny_model_dir), "--max-tokens", "4", "--temperature", "0", "--json", input="hello from a pipe")
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["model"] == tiny_model_dir.name
    assert 1 <= out["usage"]["completion_tokens"] <= 4 and out["finish_reason"] in ("stop", "length")
    with ConversationStore(StoreSettings.default(tmp_path), readonly=True) as store:
        turn = store.get(out["turn_id"])
    assert turn.input[0].content == "hello from a pipe" and turn.output[0].content == (out["content"] or None)


@pytest.mark.slow  # mlxcli in a subprocess
def test_every_api_against_a_real_mlxcli_serve(tiny_model_dir, tmp_path):
    from tests.support.process import ServeProcess

    (tmp_path / "server").mkdir()
    with ServeProcess("--model", str(tiny_model_dir), "--max-tokens", "8", home=tmp_path / "server") as served:
        for api in ("chat", "responses", "anthropic", "ollama"):
            result = run(tmp_path, "--url", served.url, "--api", api, "-p", "hello", "--json", "--max-tokens", "3",
                         "--temperature", "0")
            assert result.returncode == 0, result.stderr
            out = json.loads(result.stdout)
            assert out["model"] == tiny_model_dir.name and out["finish_reason"] in ("stop", "length")
            assert 1 <= out["usage"]["completion_tokens"] <= 3 and out["usage"]["prompt_tokens"] > 0


@pytest.mark.slow  # mlxcli in a subprocess
def test_in_process_engine_with_a_model_that_does_not_exist(tmp_path):
    result = run(tmp_path, "-m", str(tmp_path / "no-such-model"), "-p", "hi", "--no-fast-path")
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.startswith("error: ") and "Traceback" not in result.stderr


CITY = {"type": "object", "properties": {"city": {"type": "string", "maxLength": 12}}, "required": ["city"], "additionalProperties": False}


def test_json_schema_prints_only_json_that_matches(server, tmp_path):
    import jsonschema

    schema = tmp_path / "city.json"
    schema.write_text(json.dumps(CITY))
    result = chat(tmp_path, "--url", server.url, "-p", "hello", "--json-schema", str(schema))
    assert result.exit_code == 0, result.output
    jsonschema.validate(json.loads(result.stdout), CITY)  # the script's "Reply 1: hello" is not JSON
    cut = chat(tmp_path, "--url", server.url, "-p", "hello", "--json-schema", str(schema), "--max-tokens", "3")
    assert cut.exit_code == 1 and "before its JSON was complete" in cut.stderr
    schema.write_text("{not json")
    bad = chat(tmp_path, "--url", server.url, "-p", "hello", "--json-schema", str(schema))
    assert bad.exit_code == 2 and "cannot read a JSON Schema" in bad.stderr
    schema.write_text(json.dumps({"type": "nope"}))
    refused = chat(tmp_path, "--url", server.url, "-p", "hello", "--json-schema", str(schema))
    assert refused.exit_code == 1 and "Invalid type: nope" in refused.stderr

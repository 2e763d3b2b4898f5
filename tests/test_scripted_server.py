"""The scripted agent server (tests/support/scripted_server.py): `mlxcli serve` with the scripted model, in a
process of its own, as the agent CLIs and the soak (tests/support/soak/) reach it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.support.process import free_port

REPO = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow  # the scripted server in subprocesses
TOOL = {"type": "function", "function": {"name": "list_dir", "parameters": {
    "type": "object", "properties": {"path": {"type": "string"}, "depth": {"type": "integer", "minimum": 2}}, "required": ["path", "depth"]}}}


@pytest.fixture
def scripted(test_home, tmp_path):
    """Factory: the server for a script, with serve flags; stopped (SIGTERM) after the test."""
    procs = []

    def start(script: str, *flags: str) -> tuple[str, Path]:
        port, log = free_port(), tmp_path / f"{script}.log"
        env = {**os.environ, "MLXCLI_HOME": str(test_home), "PYTHONPATH": str(REPO)}
        with open(log, "wb") as out:
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "tests.support.scripted_server", "--script", script, "--context-window", "4096",
                 "--port", str(port), "--prompt-cache-dir", "none", "--store-path", str(tmp_path / "store.db"), *flags],
                env=env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT,
            ))
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert procs[-1].poll() is None, log.read_text()
            try:
                if httpx.get(url + "/health", timeout=1).status_code == 200:
                    return url, log
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise TimeoutError(log.read_text())

    yield start
    for proc in procs:
        proc.terminate()
        proc.wait(30)


def chat(url: str, messages: list[dict], **body) -> dict:
    r = httpx.post(url + "/v1/chat/completions", json={"model": "any", "messages": messages, **body}, timeout=60)
    assert r.status_code == 200, r.text
    return r.json()["choices"][0]


def test_the_agent_script_calls_an_offered_tool_then_answers_with_its_result(scripted):
    url, log = scripted("agent", "--max-tokens", "300")
    models = httpx.get(url + "/v1/models").json()["data"]
    assert [(m["id"], m["context_window"]) for m in models] == [("scripted", 4096)]
    ask = [{"role": "user", "content": "What is here?"}]
    first = chat(url, ask, tools=[TOOL])
    assert first["finish_reason"] == "tool_calls"
    (call,) = first["message"]["tool_calls"]
    assert call["function"]["name"] == "list_dir" and json.loads(call["function"]["arguments"]) == {"path": ".", "depth": 2}
    result = {"role": "tool", "tool_call_id": call["id"], "content": "a.txt\nb.txt"}
    second = chat(url, [*ask, first["message"], result], tools=[TOOL])
    assert second["finish_reason"] == "stop" and second["message"]["content"] == "The list_dir tool answered: a.txt b.txt"
    assert chat(url, ask)["message"]["content"] == "Hello from the scripted agent."  # no tools: an answer
    text = log.read_text()
    assert 'agent: tool call list_dir {"path": ".", "depth": 2}' in text
    assert text.count("POST /v1/chat/completions 200") == 3  # serve's own access log


def test_the_echo_script_answers_the_last_nonce_of_the_last_user_message(scripted):
    url, _ = scripted("echo")
    history = [{"role": "user", "content": "NONCE-old"}, {"role": "assistant", "content": "NONCE-old"}]
    answer = chat(url, [*history, {"role": "user", "content": "say NONCE-a1 then NONCE-b2 back"}])
    assert answer["message"]["content"] == "NONCE-b2"
    assert chat(url, [{"role": "user", "content": "nothing"}])["message"]["content"] == "no nonce"
    assert chat(url, [{"role": "user", "content": "NONCE-r3 REPEAT-3"}])["message"]["content"] == "NONCE-r3 NONCE-r3 NONCE-r3"
    field = chat(url, [{"role": "user", "content": 'Answer in JSON with a single "key" field: NONCE-j4'}])
    assert json.loads(field["message"]["content"]) == {"key": "NONCE-j4"}


def test_the_echo_script_calls_a_tool_with_the_nonce_then_answers_the_nonce_of_its_result(scripted):
    url, log = scripted("echo")
    ask = [{"role": "user", "content": "Look NONCE-k5 up"}]
    first = chat(url, ask, tools=[TOOL])
    (call,) = first["message"]["tool_calls"]
    assert json.loads(call["function"]["arguments"]) == {"path": "NONCE-k5", "depth": 2}  # strings: the nonce
    result = {"role": "tool", "tool_call_id": call["id"], "content": "found NONCE-v6"}
    assert chat(url, [*ask, first["message"], result], tools=[TOOL])["message"]["content"] == "NONCE-v6"
    assert 'echo: tool call list_dir {"path": "NONCE-k5", "depth": 2}' in log.read_text()


def test_each_model_flag_is_served_beside_the_scripted_model(scripted, tiny_bert_dir):
    url, _ = scripted("echo", "--model", str(tiny_bert_dir))
    models = httpx.get(url + "/v1/models").json()["data"]
    assert [(m["id"], m["kind"]) for m in models] == [("scripted", "chat"), (tiny_bert_dir.name, "embedding")]
    assert chat(url, [{"role": "user", "content": "NONCE-d7"}])["message"]["content"] == "NONCE-d7"  # still the default
    r = httpx.post(url + "/v1/embeddings", json={"model": tiny_bert_dir.name, "input": ["a", "b"]}, timeout=60)
    assert r.status_code == 200 and len(r.json()["data"]) == 2

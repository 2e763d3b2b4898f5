"""End to end with the real default model: the Responses API through `mlxcli serve` (restarted in between),
then `mlxcli convo export` reading what the server stored."""

from __future__ import annotations

import json
import subprocess
import sys

import openai
import pytest

from tests.support.process import ServeProcess

pytestmark = pytest.mark.default_model


def test_conversation_survives_a_restart_and_exports(default_model_dir, test_home, tmp_path):
    store = ["--store-path", str(tmp_path / "conversations.db"), "--conversation-dir", str(tmp_path / "logs")]
    with ServeProcess(*store, home=test_home) as served:
        client = openai.OpenAI(base_url=served.url + "/v1", api_key="unused", max_retries=0)
        r1 = client.responses.create(
            model="smollm2-135m", input="What is the capital of France? Answer in one sentence.", temperature=0
        )
        assert "Paris" in r1.output_text and r1.status == "completed"
        with client.responses.stream(
            model="smollm2-135m", input="And of Italy?", previous_response_id=r1.id, temperature=0, max_output_tokens=40
        ) as stream:
            r2 = stream.get_final_response()
        # the second prompt carried the first exchange
        assert r2.usage.input_tokens > r1.usage.input_tokens + r1.usage.output_tokens
    assert served.proc.returncode == 0, served.log()  # SIGTERM: a clean stop, store closed

    with ServeProcess(*store, home=test_home) as served:
        client = openai.OpenAI(base_url=served.url + "/v1", api_key="unused", max_retries=0)
        assert client.responses.retrieve(r2.id).output_text == r2.output_text
        r3 = client.responses.create(
            model="smollm2-135m", input="Thanks!", previous_response_id=r2.id, temperature=0, max_output_tokens=20
        )
        assert r3.usage.input_tokens > r2.usage.input_tokens + r2.usage.output_tokens

    exported = subprocess.run(
        [sys.executable, "-m", "mlxcli", "convo", "export", r3.id, "--format", "json", *store],
        capture_output=True, text=True, check=True,
    )
    doc = json.loads(exported.stdout)
    assert [t["id"] for t in doc["turns"]] == [r1.id, r2.id, r3.id]
    assert doc["turns"][0]["output"][0]["content"] == r1.output_text
    assert doc["turns"][0]["model"] == "smollm2-135m"

"""The prompt cache across a restart, through the server: turn 2 of a conversation, asked of a
server restarted after turn 1, starts from turn 1's KV (read from disk) and answers as a server
that never restarted does. /health shows the disk tier."""

from __future__ import annotations

import httpx
import openai
import pytest

from mlxcli.engine.engine import EngineSettings
from mlxcli.engine.kinds import served_model

SYSTEM = (
    "You are a patient teacher. You explain things step by step, in plain words, with one short "
    "example for each idea, and you finish every answer with a one-line summary."
)
TURN_1 = [
    {"role": "system", "content": SYSTEM},
    {"role": "user", "content": "Why do boats float? Explain buoyancy and density to a ten-year-old."},
]


@pytest.fixture
def start(run_engine, serve, default_model_dir):
    """Factory: a server for the default model (greedy) and its client."""

    def make(**settings):
        settings = EngineSettings(temperature=0.0, **settings)
        engine = run_engine([served_model("smollm2", default_model_dir, settings)], settings)
        server = serve(engine)
        return engine, server, openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)

    return make


def ask(client, messages):
    return client.chat.completions.create(model="smollm2", messages=messages, max_tokens=20, temperature=0)


@pytest.mark.default_model
def test_turn_two_after_a_restart_starts_from_turn_one_read_from_disk(start, tmp_path):
    directory = str(tmp_path / "prompt-cache")
    engine, server, client = start(prompt_cache_dir=directory)
    first = ask(client, TURN_1)
    server.close()
    engine.stop()  # as `mlxcli serve` stops: the memory tier goes to disk

    _, restarted, client = start(prompt_cache_dir=directory)
    turn_2 = TURN_1 + [{"role": "assistant", "content": first.choices[0].message.content}, {"role": "user", "content": "And why do rocks sink?"}]
    after_restart = ask(client, turn_2)
    assert after_restart.usage.prompt_tokens_details.cached_tokens >= 0.9 * first.usage.prompt_tokens
    health = httpx.get(restarted.url + "/health").json()["prompt_cache"]["disk"]
    assert health["hits"] == 1 and health["entries"] >= 1 and health["dir"] == directory

    _, _, never_restarted = start()
    assert ask(never_restarted, TURN_1).choices[0].message.content == first.choices[0].message.content
    assert ask(never_restarted, turn_2).choices[0].message.content == after_restart.choices[0].message.content

"""A gpt_oss model directory served for real: mlx-lm's architecture loaded by our loader, Harmony from its config."""

from __future__ import annotations

import openai

from mlxcli.engine.engine import EngineSettings
from mlxcli.engine.kinds import served_model
from tests.harmony.clients import no_markers


def test_a_tiny_random_gpt_oss_serves_over_http(gpt_oss_dir, run_engine, serve):
    model = served_model("gpt-oss-tiny", gpt_oss_dir, EngineSettings())
    assert model.format.headers is not None
    server = serve(run_engine([model], EngineSettings(temperature=1.0)))
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)
    body = {"model": "gpt-oss-tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 12, "seed": 1}
    raw = client.chat.completions.with_raw_response.create(**body)
    no_markers(raw.http_response.text)  # random tokens: whatever they are, markup never reaches the answer
    answer = raw.parse()
    assert answer.model == "gpt-oss-tiny" and answer.choices[0].finish_reason in ("length", "stop")
    assert 0 < answer.usage.completion_tokens <= 12
    with client.chat.completions.with_streaming_response.create(**body, stream=True) as r:
        no_markers(r.http_response.read().decode())

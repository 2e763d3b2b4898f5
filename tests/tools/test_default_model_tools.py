"""The real default model (SmolLM2-135M, whose template knows no tools) calling a tool through the fallback format."""

from __future__ import annotations

import json

import openai
import pytest

from mlxcli.engine.engine import EngineSettings, MlxEngine
from tests.support.server import RunningServer

pytestmark = pytest.mark.default_model

TOOLS = [{"type": "function", "function": {
    "name": "get_weather", "description": "Get the current weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}}]


@pytest.fixture(scope="module")
def client(default_model_dir):
    engine = MlxEngine.from_path("smollm2-135m", default_model_dir, EngineSettings(temperature=0.0)).start()
    with RunningServer(engine) as server:
        yield openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)
    engine.stop(grace=1)


def test_named_tool_choice_gets_a_real_call(client):
    message = client.chat.completions.create(
        model="m", messages=[{"role": "user", "content": "What is the weather in Paris?"}], tools=TOOLS,
        tool_choice={"type": "function", "function": {"name": "get_weather"}}, max_completion_tokens=40,
    ).choices[0].message
    (call,) = message.tool_calls
    assert call.function.name == "get_weather" and json.loads(call.function.arguments)["city"] == "Paris"
    assert "<tool_call>" not in (message.content or "") and "arguments" not in (message.content or "")

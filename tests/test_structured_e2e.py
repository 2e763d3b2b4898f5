"""The real default model answers every test schema, on all three APIs, streamed and not, with JSON that
validates. The 132 requests go concurrently, so the engine batches them."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import anthropic
import jsonschema
import openai
import pytest

from mlxcli.engine.engine import EngineSettings, MlxEngine
from tests.support.schemas import SCHEMAS
from tests.support.server import RunningServer

pytestmark = pytest.mark.default_model

MAX_TOKENS = 64


@pytest.fixture(scope="module")
def server(default_model_dir):
    engine = MlxEngine.from_path("smollm2-135m", default_model_dir, EngineSettings(temperature=0.0)).start()
    with RunningServer(engine) as srv:
        yield srv
    engine.stop(grace=1)


def question(name: str) -> str:
    return f"Reply in JSON: {name.replace('_', ' ')}"


def chat(server, name: str, schema: dict, stream: bool) -> str:
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)
    body = dict(
        model="m",
        messages=[{"role": "user", "content": question(name)}],
        max_completion_tokens=MAX_TOKENS,
        response_format={"type": "json_schema", "json_schema": {"name": name, "schema": schema, "strict": True}},
    )
    if not stream:
        return client.chat.completions.create(**body).choices[0].message.content
    chunks = client.chat.completions.create(**body, stream=True)
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


def responses(server, name: str, schema: dict, stream: bool) -> str:
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)
    body = dict(
        model="m", input=question(name), max_output_tokens=MAX_TOKENS, store=False,
        text={"format": {"type": "json_schema", "name": name, "schema": schema, "strict": True}},
    )
    if not stream:
        return client.responses.create(**body).output_text
    with client.responses.stream(**body) as events:
        return events.get_final_response().output_text


def messages(server, name: str, schema: dict, stream: bool) -> str:
    client = anthropic.Anthropic(base_url=server.url, api_key="unused", max_retries=0)
    body = dict(
        model="m", max_tokens=MAX_TOKENS, messages=[{"role": "user", "content": question(name)}],
        output_config={"format": {"type": "json_schema", "schema": schema}},
    )
    if not stream:
        return client.messages.create(**body).content[0].text
    with client.messages.stream(**body) as events:
        return events.get_final_message().content[0].text


def test_every_schema_on_every_api_streamed_and_not(server):
    assert len(SCHEMAS) >= 20
    cases = [(api, name, stream) for api in (chat, responses, messages) for name in SCHEMAS for stream in (False, True)]

    def run(case):
        api, name, stream = case
        return api(server, name, SCHEMAS[name], stream)

    with ThreadPoolExecutor(16) as pool:  # the engine's batch: 16 decode together
        answers = list(pool.map(run, cases))
    for (api, name, stream), text in zip(cases, answers):
        try:
            jsonschema.validate(json.loads(text), SCHEMAS[name])
        except (ValueError, jsonschema.ValidationError) as exc:
            pytest.fail(f"{api.__name__} {name} stream={stream}: {text!r} ({exc})")

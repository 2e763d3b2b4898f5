"""End to end with the real default model: `mlxcli serve` in a subprocess, the openai SDK as client."""

from __future__ import annotations

import openai
import pytest

from tests.support.process import ServeProcess

pytestmark = pytest.mark.default_model

QUESTION = [{"role": "user", "content": "What is the capital of France? Answer in one sentence."}]


@pytest.fixture(scope="module")
def served(default_model_dir, test_home):
    with ServeProcess(home=test_home) as proc:
        yield proc


@pytest.fixture(scope="module")
def client(served):
    return openai.OpenAI(base_url=served.url + "/v1", api_key="unused", max_retries=0)


def test_paris_non_streaming(client):
    r = client.chat.completions.create(model="smollm2-135m", messages=QUESTION, temperature=0)
    assert "Paris" in r.choices[0].message.content
    assert r.choices[0].finish_reason == "stop"


def test_paris_streaming(client):
    stream = client.chat.completions.create(model="smollm2-135m", messages=QUESTION, temperature=0, stream=True)
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert "Paris" in text


def test_startup_log_names_the_cpu_path(served):
    assert "fast path" in served.log() or "native MLX backend" in served.log()


def test_anthropic_sdk_paris(served):
    import anthropic

    client = anthropic.Anthropic(base_url=served.url, api_key="unused", max_retries=0)
    greedy = {"temperature": 0}
    r = client.messages.create(model="smollm2-135m", max_tokens=60, messages=QUESTION, extra_body=greedy)
    assert "Paris" in r.content[0].text and r.stop_reason == "end_turn"
    with client.messages.stream(model="smollm2-135m", max_tokens=60, messages=QUESTION, extra_body=greedy) as stream:
        assert "".join(stream.text_stream) == r.content[0].text
        assert stream.get_final_message().usage.output_tokens == r.usage.output_tokens
    counted = client.messages.count_tokens(model="smollm2-135m", messages=QUESTION).input_tokens
    assert counted == r.usage.input_tokens + r.usage.cache_read_input_tokens  # Anthropic's input_tokens: not read from cache


def test_azure_client_paris(served):
    azure = openai.AzureOpenAI(azure_endpoint=served.url, api_version="2024-10-21", api_key="unused", max_retries=0)
    r = azure.chat.completions.create(model="smollm2-135m", messages=QUESTION, temperature=0)
    assert "Paris" in r.choices[0].message.content

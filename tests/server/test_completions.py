"""Legacy Completions (``POST /v1/completions``): a raw prompt in, through the official SDK and raw HTTP."""

from __future__ import annotations

import httpx
import openai
import pytest

from mlxcli.engine.engine import EngineSettings
from mlxcli.engine.kinds import served_model
from tests.support.models import Recording, scripted_model
from tests.support.tool_models import make_tool_tokenizer_dir

# The scripted model answers once its prompt ends in its template's generation marker: the raw prompts
# here end in it (SmolLM2's), and the model must see them exactly as sent, with no template around them.
MARK = "<|im_start|>assistant\n"
PROMPT = "def add(a, b):\n" + MARK
BODY = "    return a + b\n"


@pytest.fixture
def completions(scripted_engine, serve):
    """Factory: (a server whose scripted model answers ``respond(prompt)``, an SDK client, the recording)."""

    def make(respond=lambda prompt: BODY):
        recording = Recording(respond)
        server = serve(scripted_engine(recording))
        return server, openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0), recording

    return make


def test_a_raw_prompt_is_continued_without_a_chat_template(completions):
    server, client, recording = completions()
    c = client.completions.create(model="m", prompt=PROMPT, max_tokens=50)
    assert c.object == "text_completion" and c.id.startswith("cmpl-")
    assert c.choices[0].text == BODY and c.choices[0].finish_reason == "stop" and c.choices[0].logprobs is None
    assert recording.prompts == [PROMPT]  # the text itself: no <|im_start|>
    assert c.usage.completion_tokens > 0 and c.usage.total_tokens == c.usage.prompt_tokens + c.usage.completion_tokens


def test_streamed_with_echo_stop_and_usage(completions):
    server, client, _ = completions()
    chunks = list(client.completions.create(model="m", prompt=[PROMPT], stream=True, echo=True, stop=["+"],
                                            stream_options={"include_usage": True}, max_tokens=50))
    text = "".join(ch.choices[0].text for ch in chunks if ch.choices)
    assert text == PROMPT + "    return a "
    assert [ch.choices[0].finish_reason for ch in chunks if ch.choices][-1] == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens > 0


def test_max_tokens_cuts_the_answer_and_defaults_to_16(completions):
    server, client, _ = completions(lambda prompt: "word " * 40)
    short = client.completions.create(model="m", prompt=MARK, max_tokens=3)
    assert short.choices[0].finish_reason == "length" and short.usage.completion_tokens == 3
    default = client.completions.create(model="m", prompt=MARK)
    assert default.choices[0].finish_reason == "length" and default.usage.completion_tokens == 16


@pytest.mark.parametrize(
    "body, param",
    [
        ({}, "prompt"),
        ({"prompt": 5}, "prompt"),
        ({"prompt": ["a", "b"]}, "prompt"),
        ({"prompt": [1, 2, 3]}, "prompt"),
        ({"prompt": "x", "max_tokens": 0}, "max_tokens"),
        ({"prompt": "x", "temperature": 3}, "temperature"),
        ({"prompt": "x", "logprobs": 21}, "logprobs"),
        ({"prompt": "x", "n": 2}, "n"),
        ({"prompt": "x", "suffix": "y"}, "suffix"),  # SmolLM2 has no fill-in-the-middle tokens
        ({"prompt": "x", "stream_options": {"include_usage": True}}, "stream_options"),
    ],
)
def test_bad_requests_name_the_parameter(completions, body, param):
    server, _, _ = completions()
    r = httpx.post(server.url + "/v1/completions", json={"model": "m", **body})
    assert r.status_code == 400, r.text
    assert r.json()["error"]["param"] == param and r.json()["error"]["type"] == "invalid_request_error"


def test_suffix_fills_in_the_middle_where_the_vocabulary_has_fim_tokens(tokenizer_dir, tmp_path, run_engine, serve):
    from transformers import AutoTokenizer

    # a template whose generation marker is the FIM middle token, for the scripted model to answer after it
    template = "{% for m in messages %}{{ m.content }}{% endfor %}{% if add_generation_prompt %}<|fim_middle|>{% endif %}"
    directory = make_tool_tokenizer_dir(tokenizer_dir, tmp_path / "fim", template)
    tokenizer = AutoTokenizer.from_pretrained(directory)
    tokenizer.add_special_tokens({"additional_special_tokens": ["<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>"]})
    tokenizer.save_pretrained(directory)
    recording = Recording(lambda prompt: "a + b")
    server = serve(run_engine([scripted_model(directory, recording)], EngineSettings(temperature=0.0)))
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)
    c = client.completions.create(model="m", prompt="def add(a, b):\n    return ", suffix="\n\nprint(add(1, 2))", max_tokens=20)
    assert c.choices[0].text == "a + b"
    assert recording.prompts == ["<|fim_prefix|>def add(a, b):\n    return <|fim_suffix|>\n\nprint(add(1, 2))<|fim_middle|>"]


@pytest.mark.default_model
def test_the_real_model_continues_a_prompt_with_greedy_logprobs(run_engine, default_model_dir, serve):
    settings = EngineSettings(temperature=0.0)
    server = serve(run_engine([served_model(default_model_dir.name, default_model_dir, settings)], settings))
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)
    c = client.completions.create(model="m", prompt="The capital of France is", max_tokens=6, temperature=0, logprobs=3)
    choice = c.choices[0]
    assert "Paris" in choice.text
    lp = choice.logprobs
    assert "".join(lp.tokens) == choice.text and len(lp.tokens) == c.usage.completion_tokens
    for token, logprob, top in zip(lp.tokens, lp.token_logprobs, lp.top_logprobs):
        assert len(top) == 3 and logprob <= 0
        assert max(top.values()) == pytest.approx(logprob, abs=1e-4) and token in top  # greedy: the likeliest

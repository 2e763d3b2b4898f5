"""`mlxcli serve` in a subprocess with two tiny random models: config file, aliases, swapping, `mlxcli ps`."""

from __future__ import annotations

import httpx
import openai
import pytest
from mlx_lm.utils import load_tokenizer
from typer.testing import CliRunner

from mlxcli.cli import app
from tests.support.models import make_tiny_model_dir
from tests.support.process import ServeProcess

pytestmark = pytest.mark.slow  # mlxcli serve in a subprocess


@pytest.fixture(scope="module")
def tiny_pair(tokenizer_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("pair")
    return make_tiny_model_dir(tokenizer_dir, root / "tiny-one", seed=1), make_tiny_model_dir(tokenizer_dir, root / "tiny-two", seed=2)


def ask(client, model: str, content: str = "Hello") -> openai.types.chat.ChatCompletion:
    return client.chat.completions.create(model=model, messages=[{"role": "user", "content": content}], max_tokens=6)


def loaded(url: str) -> list[str]:
    return httpx.get(url + "/health").json()["loaded_models"]


def test_config_file_serves_both_models_and_swaps_them(tiny_pair, tmp_path):
    one, two = tiny_pair
    (tmp_path / "models").mkdir()
    config = tmp_path / "serve.yaml"
    config.write_text(
        f"""
models:
  - model: {one}
    served_name: one
    aliases: [first]
    temperature: 0
  - model: {two}
    served_name: two
    aliases: [second]
    temperature: 0
    context_length: 256
server:
  max_loaded_models: 1
  port: 1   # the test's --port flag wins
"""
    )
    with ServeProcess("--config", str(config), home=tmp_path) as proc:
        client = openai.OpenAI(base_url=proc.url + "/v1", api_key="x", max_retries=0)
        models = httpx.get(proc.url + "/v1/models").json()["data"]
        assert [(m["id"], m["aliases"], m["context_window"], m["loaded"]) for m in models] == [
            ("one", ["first"], 2048, True),
            ("two", ["second"], 256, False),
        ]
        answers: dict[str, set[str]] = {"one": set(), "two": set()}
        for name, model in [("first", "one"), ("second", "two"), ("one", "one"), ("two", "two")]:
            r = ask(client, name)
            assert r.model == name and r.usage.completion_tokens > 0
            answers[model].add(r.choices[0].message.content)
            assert loaded(proc.url) == [model]
        assert len(answers["one"]) == len(answers["two"]) == 1  # greedy: each model repeats itself...
        assert answers["one"] != answers["two"]  # ...and the two models differ

        with pytest.raises(openai.BadRequestError) as err:
            ask(client, "second", "word " * 300)
        assert err.value.body["code"] == "context_length_exceeded"
        with pytest.raises(openai.NotFoundError):
            ask(client, "gpt-4o")

        ps = CliRunner().invoke(app, ["ps", "--url", proc.url])
        assert ps.exit_code == 0, ps.output
        assert ps_rows(ps.output) == [["two", "chat", "loaded"]]
        log = proc.log()
    assert "unloaded one (least recently used; making room for two)" in log
    assert "loading two" in log and "loaded two from" in log


def test_several_model_flags_serve_under_directory_names(tiny_pair, tmp_path, tokenizer_dir):
    one, two = tiny_pair
    template = tmp_path / "plain.jinja"
    template.write_text(
        "{% for m in messages %}[{{ m.role }}] {{ m.content }}\n{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    )
    args = ("--model", str(one), "--model", str(two), "--max-loaded-models", "2", "--chat-template", str(template))
    with ServeProcess(*args, home=tmp_path) as proc:
        client = openai.OpenAI(base_url=proc.url + "/v1", api_key="x", max_retries=0)
        assert [m.id for m in client.models.list()] == ["tiny-one", "tiny-two"]
        r = ask(client, "tiny-two")
        expected = load_tokenizer(tokenizer_dir).encode("[user] Hello\n<|im_start|>assistant\n", add_special_tokens=False)
        assert r.usage.prompt_tokens == len(expected)  # rendered with the custom template
        ask(client, str(one))  # the full path reaches it too
        assert loaded(proc.url) == ["tiny-one", "tiny-two"]  # both fit: nothing was evicted
        assert "unloaded" not in proc.log()


def ps_rows(output: str) -> list[list[str]]:
    """The first three columns of each model row of ``mlxcli ps`` (the table, before the queue line)."""
    lines = output.splitlines()[1:]
    return [line.split()[:3] for line in lines[: next(i for i, line in enumerate(lines) if line.startswith("queue:"))]]


def test_a_chat_model_and_the_minilm_alias_from_one_server(tiny_pair, test_home, minilm_dir):
    one, _ = tiny_pair
    with ServeProcess("--model", str(one), "--model", "minilm", home=test_home) as proc:
        client = openai.OpenAI(base_url=proc.url + "/v1", api_key="x", max_retries=0)
        assert [(m.id, m.kind) for m in client.models.list()] == [("tiny-one", "chat"), ("minilm", "embedding")]
        assert ask(client, "tiny-one").usage.completion_tokens > 0
        r = client.embeddings.create(model="text-embedding-3-small", input=["hello", "world"])  # the only embedding model
        assert r.model == "text-embedding-3-small" and [len(d.embedding) for d in r.data] == [384, 384]
        assert loaded(proc.url) == ["tiny-one", "minilm"]  # one of each kind, under --max-loaded-models 1
        ps = CliRunner().invoke(app, ["ps", "--url", proc.url])
        assert ps_rows(ps.output) == [["tiny-one", "chat", "loaded"], ["minilm", "embedding", "loaded"]]
        assert "minilm: embeddings, mean_tokens pooling, normalised, 384 dimensions" in proc.log()

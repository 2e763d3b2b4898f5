"""The Ollama API through a real server, judged by the official ``ollama`` library and LangChain's
ChatOllama, and by the NDJSON checker line by line (scripted model: exact output)."""

from __future__ import annotations

import json
import time
from datetime import datetime, timezone
from typing import Literal

import httpx
import jsonschema
import ollama
import pytest
from pydantic import BaseModel, Field

from mlxcli.core.errors import ContextLengthExceeded
from mlxcli.core.request import ChatRequest, Message
from mlxcli.engine.engine import EngineSettings, MlxEngine
from mlxcli.server import errors
from tests.support.http import open_stream, read_until, settled, wait_for
from tests.support.models import Fail, scripted_model, scripted_of
from tests.support.ndjson import check_final, check_ndjson
from tests.support.server import RunningServer

REPLY = "The sky is blue because of Rayleigh scattering."
BROKEN = 'Sure! Here it is: {"name": "Bob", "age": "old", "tags": ["c"]}'  # JSON only under a constraint
LONG_REPLY = " ".join(f"w{i}" for i in range(400))  # ~800 tokens
HI = [{"role": "user", "content": "Why is the sky blue?"}]


def respond(prompt: str) -> str:
    if "boom" in prompt:
        return Fail("Half an")
    if "long" in prompt:
        return LONG_REPLY
    if "JSON" in prompt:
        return BROKEN
    return REPLY


@pytest.fixture(scope="module")
def loads():
    return []


@pytest.fixture(scope="module")
def engine(tokenizer_dir, loads):
    model = scripted_model(tokenizer_dir, respond, name="sky", on_load=loads.append)
    engine = MlxEngine([model], EngineSettings(temperature=0.0)).start()
    yield engine
    engine.stop(grace=1)


@pytest.fixture(scope="module")
def server(engine):
    with RunningServer(engine) as srv:
        yield srv


@pytest.fixture
def client(server):
    return ollama.Client(host=server.url)


def post(server, path: str, body: dict) -> httpx.Response:
    return httpx.post(server.url + path, json=body, timeout=60)


def ollama_error(r: httpx.Response, status: int) -> str:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert set(body) == {"error"} and isinstance(body["error"], str) and body["error"], body
    assert "Traceback" not in r.text
    return body["error"]


class Person(BaseModel):
    name: str = Field(max_length=12)
    age: int = Field(ge=0, le=120)
    tags: list[Literal["a", "b"]] = Field(max_length=3)


BOB = [{"role": "user", "content": "Describe Bob as JSON."}]


def prompt_tokens(engine, question: str) -> int:
    return len(engine.render(ChatRequest([Message("user", question)])).tokens)


def reply_tokens(engine, text: str = REPLY) -> int:
    return len(engine.registry.default.tokenizer.encode(text, add_special_tokens=False))


# ---- chat and generate -------------------------------------------------------------------


def test_chat_streamed_through_the_library_and_line_by_line(server, client, engine):
    parts = list(client.chat(model="sky", messages=HI, stream=True))
    assert "".join(p.message.content for p in parts) == REPLY and len(parts) > 2
    assert [p.done for p in parts].count(True) == 1 and parts[-1].done and parts[-1].done_reason == "stop"
    assert parts[-1].eval_count == reply_tokens(engine)

    r = post(server, "/api/chat", {"model": "sky", "messages": HI})  # streaming is the default
    assert r.status_code == 200 and r.headers["content-type"] == "application/x-ndjson"
    stream = check_ndjson(r.content)
    assert stream.text == REPLY and stream.final["eval_count"] == reply_tokens(engine)
    assert stream.final["prompt_eval_count"] == prompt_tokens(engine, HI[0]["content"])


def test_chat_not_streamed(server, client, engine):
    answer = client.chat(model="sky:latest", messages=HI, stream=False)
    assert answer.message.role == "assistant" and answer.message.content == REPLY
    assert answer.model == "sky:latest" and answer.done and answer.done_reason == "stop"
    body = post(server, "/api/chat", {"model": "sky", "messages": HI, "stream": False}).json()
    check_final(body)
    assert body["message"] == {"role": "assistant", "content": REPLY}
    assert datetime.fromisoformat(body["created_at"].replace("Z", "+00:00")) <= datetime.now(timezone.utc)


def test_generate(server, client, engine):
    answer = client.generate(model="sky", prompt="Why is the sky blue?", system="Be brief.", stream=False)
    assert answer.response == REPLY and answer.done_reason == "stop" and answer.eval_count == reply_tokens(engine)
    assert "Be brief." in scripted_of(engine).prompts[-1]  # the system prompt, through the chat template
    stream = check_ndjson(post(server, "/api/generate", {"model": "sky", "prompt": "Why?"}).content, kind="generate")
    assert stream.text == REPLY
    assert "".join(p.response for p in client.generate(model="sky", prompt="Why?", stream=True)) == REPLY


def test_options(server, client, engine):
    answer = client.generate(model="sky", prompt="Why?", options={"num_predict": 3, "temperature": 0.0, "seed": 7}, stream=False)
    assert answer.done_reason == "length" and answer.eval_count == 3 and REPLY.startswith(answer.response)
    stopped = client.chat(model="sky", messages=HI, options={"stop": [" because"]}, stream=False)
    assert stopped.message.content == "The sky is blue" and stopped.done_reason == "stop"
    # LangChain and others send options that change nothing here (where and how fast the model runs).
    same = client.chat(model="sky", messages=HI, options={"num_gpu": 1, "num_thread": 8, "repeat_last_n": 64, "mirostat": 0}, stream=False)
    assert same.message.content == REPLY


def test_num_ctx_lowers_the_window_for_one_request(server, client, engine):
    prompt = prompt_tokens(engine, "long")
    cut = client.chat(model="sky", messages=[{"role": "user", "content": "long"}], options={"num_ctx": prompt + 5}, stream=False)
    assert cut.done_reason == "length" and cut.eval_count == 5
    message = ollama_error(post(server, "/api/chat", {"model": "sky", "messages": HI, "options": {"num_ctx": 4}}), 400)
    assert "maximum context length is 4 tokens" in message
    message = ollama_error(post(server, "/api/chat", {"model": "sky", "messages": HI, "options": {"num_ctx": 4096}}), 400)
    assert "4096 tokens was asked for; the model's is 2048" in message
    assert client.chat(model="sky", messages=HI, stream=False).message.content == REPLY  # the next request: the whole window


def test_an_error_half_way_is_one_error_line(server, client):
    r = post(server, "/api/chat", {"model": "sky", "messages": [{"role": "user", "content": "boom"}]})
    assert r.status_code == 200
    stream = check_ndjson(r.content)
    assert stream.text and "Half an".startswith(stream.text) and stream.final is None and "generation failed" in stream.error
    with pytest.raises(ollama.ResponseError, match="generation failed"):
        list(client.chat(model="sky", messages=[{"role": "user", "content": "boom"}], stream=True))


def test_format_json_and_a_json_schema(server, client):
    assert client.chat(model="sky", messages=BOB, stream=False).message.content == BROKEN  # free: not JSON
    typed = client.chat(model="sky", messages=BOB, format=Person.model_json_schema(), stream=False)
    assert isinstance(Person.model_validate_json(typed.message.content), Person)
    streamed = "".join(p.message.content for p in client.chat(model="sky", messages=BOB, format=Person.model_json_schema(), stream=True))
    jsonschema.validate(json.loads(streamed), Person.model_json_schema())
    assert isinstance(json.loads(client.generate(model="sky", prompt="Bob as JSON.", format="json", stream=False).response), dict)
    stream = check_ndjson(post(server, "/api/generate", {"model": "sky", "prompt": "Bob as JSON.", "format": "json"}).content, kind="generate")
    assert isinstance(json.loads(stream.text), dict)
    bad = {"type": "object", "properties": {"a": {"type": "string", "pattern": "(?<=x)a"}}}
    assert "format" in ollama_error(post(server, "/api/chat", {"model": "sky", "messages": BOB, "format": bad}), 400)


# ---- load, unload and keep_alive ----------------------------------------------------------


def running(server) -> list[dict]:
    return httpx.get(server.url + "/api/ps").json()["models"]


def test_keep_alive_load_and_unload(server, client, loads):
    before = len(loads)
    assert post(server, "/api/generate", {"model": "sky", "keep_alive": 0}).json()["done_reason"] == "unload"
    assert running(server) == []
    loaded = post(server, "/api/chat", {"model": "sky", "messages": [], "keep_alive": "10m"}).json()
    assert (loaded["done"], loaded["done_reason"], loaded["message"]) == (True, "load", {"role": "assistant", "content": ""})
    assert len(loads) == before + 1
    (model,) = running(server)
    expires = datetime.fromisoformat(model["expires_at"].replace("Z", "+00:00")).timestamp()
    assert 9 * 60 < expires - time.time() <= 10 * 60
    # keep_alive 0 on a request: answered, then unloaded as soon as it is idle.
    assert client.chat(model="sky", messages=HI, keep_alive=0, stream=False).message.content == REPLY
    assert wait_for(lambda: running(server) == [])
    assert client.chat(model="sky", messages=HI, stream=False).message.content == REPLY  # loaded again, kept
    assert len(loads) == before + 2 and len(running(server)) == 1
    assert running(server)[0]["expires_at"].startswith("2318")  # no unload scheduled: the server has no --idle-unload


# ---- model routes -------------------------------------------------------------------------


def test_tags_show_ps_version_and_root(server, client, engine):
    (listed,) = client.list().models
    assert listed.model == "sky:latest" and listed.details.format == "safetensors" and listed.digest
    shown = client.show("sky")
    assert shown.capabilities == ["completion", "tools"] and "general.architecture" in shown.modelinfo
    assert shown.template == engine.registry.default.tokenizer.chat_template
    assert shown.modelinfo["unknown.context_length"] == 2048 and "PARAMETER num_ctx 2048" in shown.modelfile
    client.chat(model="sky", messages=HI, stream=False)
    (model,) = client.ps().models
    assert model.model == "sky:latest" and model.context_length == 2048
    assert httpx.get(server.url + "/api/version").json()["version"].count(".") == 2
    root = httpx.get(server.url + "/")
    assert (root.status_code, root.text) == (200, "Ollama is running")
    head = httpx.head(server.url + "/")
    assert head.status_code == 200 and head.content == b""
    assert httpx.head(server.url + "/api/tags").status_code == 200
    assert httpx.get(server.url + "/mlxcli/ps").json()["models"][0]["name"] == "sky"  # mlxcli's own, moved here


def test_a_chat_model_does_not_embed(server, client):
    with pytest.raises(ollama.ResponseError, match="does not support embeddings") as info:
        client.embed(model="sky", input="hello")
    assert info.value.status_code == 400
    ollama_error(post(server, "/api/embeddings", {"model": "sky", "prompt": "hello"}), 400)


def test_delete_is_off_by_default(server):
    r = httpx.request("DELETE", server.url + "/api/delete", json={"model": "sky"})
    assert "--allow-delete" in ollama_error(r, 403)


# ---- errors in Ollama's shape -------------------------------------------------------------


@pytest.mark.parametrize(
    "path, body, needle",
    [
        ("/api/chat", {"messages": HI}, "'model'"),
        ("/api/chat", {"model": "sky", "messages": [{"role": "robot", "content": "x"}]}, "messages[0].role"),
        ("/api/chat", {"model": "sky", "messages": HI, "format": 3}, "'format'"),
        ("/api/chat", {"model": "sky", "messages": HI, "format": "yaml"}, "'format'"),
        ("/api/chat", {"model": "sky", "messages": [{"role": "user", "content": "x", "images": ["aGk="]}]}, "messages[0].images"),
        ("/api/chat", {"model": "sky", "messages": HI, "options": {"temperature": "hot"}}, "options.temperature"),
        ("/api/chat", {"model": "sky", "messages": HI, "options": {"temprature": 1}}, "options.temprature"),
        ("/api/chat", {"model": "sky", "messages": HI, "options": {"num_gpu": "all"}}, "options.num_gpu"),
        ("/api/chat", {"model": "sky", "messages": HI, "options": {"num_predict": -3}}, "options.num_predict"),
        ("/api/chat", {"model": "sky", "messages": HI, "keep_alive": "5 minutes"}, "keep_alive"),
        ("/api/chat", {"model": "sky", "messages": HI, "keep_alive": [5]}, "keep_alive"),
        ("/api/chat", {"model": "sky", "messages": HI, "think": "hard"}, "think"),
        ("/api/chat", {"model": "sky", "messages": HI, "think": True}, "does not support thinking"),
        ("/api/chat", {"model": "sky", "messages": HI, "logprobs": True}, "logprobs"),
        ("/api/chat", {"model": "sky", "messages": HI, "tools": [{"type": "function"}]}, "tools[0].function"),
        ("/api/chat", {"model": "sky", "messages": [{"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": [1]}}]}]},
         "messages[0].tool_calls[0].function.arguments"),
        ("/api/chat", {"model": "sky", "messages": "hi"}, "messages"),
        ("/api/generate", {"model": "sky", "prompt": "x", "raw": True}, "'raw'"),
        ("/api/generate", {"model": "sky", "prompt": "x", "template": "{{ .Prompt }}"}, "'template'"),
        ("/api/generate", {"model": "sky", "prompt": "x", "suffix": "end"}, "'suffix'"),
        ("/api/generate", {"model": "sky", "prompt": "x", "context": [1, 2]}, "deprecated"),
        ("/api/generate", {"model": "sky", "prompt": "x", "images": ["aGk="]}, "images[0]"),  # not an image
        ("/api/generate", {"model": "sky", "prompt": "x", "images": [5]}, "images[0]"),
        ("/api/generate", {"model": "sky", "prompt": 5}, "'prompt'"),
        ("/api/show", {}, "'model'"),
        ("/api/pull", {"model": "../etc"}, "not accepted"),
    ],
)
def test_bad_input_is_an_ollama_400(server, engine, path, body, needle):
    prompts = len(scripted_of(engine).prompts)
    assert needle in ollama_error(post(server, path, body), 400)
    assert len(scripted_of(engine).prompts) == prompts  # refused before any work


def test_json_under_any_content_type_as_curl_d_sends_it(server):
    body = json.dumps({"model": "sky", "prompt": "Why?", "stream": False})
    r = httpx.post(server.url + "/api/generate", content=body, headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 200 and r.json()["response"] == REPLY


def test_bad_bodies_and_routes(server, client):
    r = httpx.post(server.url + "/api/chat", content=b"{", headers={"Content-Type": "application/json"})
    assert "not valid JSON" in ollama_error(r, 400)
    ollama_error(httpx.get(server.url + "/api/nope"), 404)
    ollama_error(httpx.get(server.url + "/api/chat"), 405)
    with pytest.raises(ollama.ResponseError) as info:
        client.chat(model="sky", messages=HI, keep_alive="5 minutes")
    assert info.value.status_code == 400 and "keep_alive" in info.value.error


def test_error_statuses_in_ollamas_shape():
    status, _, body = errors.render_for_path(ContextLengthExceeded(5000, 2048), "/api/chat")
    assert (status, json.loads(body)) == (400, {"error": "This model's maximum context length is 2048 tokens. "
                                                          "However, your messages resulted in 5000 tokens."})


def test_an_unknown_model_with_several_served_is_404(tokenizer_dir, run_engine, serve):
    two = serve(run_engine([scripted_model(tokenizer_dir, respond, name="a"), scripted_model(tokenizer_dir, respond, name="b")],
                           EngineSettings(temperature=0.0)))
    ollama_error(post(two, "/api/chat", {"model": "c", "messages": HI}), 404)
    assert ollama.Client(host=two.url).chat(model="b:latest", messages=HI, stream=False).message.content == REPLY
    assert [m.model for m in ollama.Client(host=two.url).list().models] == ["a:latest", "b:latest"]


# ---- disconnects --------------------------------------------------------------------------


def test_disconnect_mid_stream_cancels_the_generation(tokenizer_dir, run_engine, serve):
    engine = run_engine([scripted_model(tokenizer_dir, respond)], EngineSettings(temperature=0.0, max_batch=1))
    scripted_of(engine).step_delay = 0.02
    srv = serve(engine)
    sock = open_stream(srv.http.port, "long", path="/api/chat", model="m")
    read_until(sock, b'"done":false', count=6)
    at_close = scripted_of(engine).calls
    sock.close()
    stopped, _ = settled(lambda: scripted_of(engine).calls)
    assert stopped - at_close <= 10, f"{stopped - at_close} more forward passes after the client left"
    assert httpx.get(srv.url + "/health").json()["in_flight"] == 0
    assert ollama.Client(host=srv.url).generate(model="m", prompt="hi", stream=False).response == REPLY


# ---- LangChain -----------------------------------------------------------------------------


def test_langchain_chat_ollama(server):
    from langchain_ollama import ChatOllama

    llm = ChatOllama(model="sky", base_url=server.url, temperature=0, num_ctx=1024, validate_model_on_init=True)
    answer = llm.invoke("Why is the sky blue?")
    assert answer.content == REPLY and answer.usage_metadata["output_tokens"] > 0
    assert "".join(chunk.content for chunk in llm.stream("Why is the sky blue?")) == REPLY
    assert isinstance(llm.with_structured_output(Person).invoke("Describe Bob as JSON."), Person)  # through `format`

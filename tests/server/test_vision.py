"""Image input through the real server, judged by the official OpenAI and Anthropic SDKs.

One server for the module: a tiny random Qwen2-VL (tests/support/vision_models.py) beside a tiny text
model, one loaded at a time, so requests swap between them. Greedy output depends on the image: the
answer to image A differs from the answer to image B and equals itself when A is sent again.
"""

from __future__ import annotations

import base64
import io
import json
import struct
import sys
import threading
import zlib

import anthropic
import httpx
import openai
import pytest

from mlxcli.engine.engine import EngineSettings, MlxEngine
from mlxcli.engine.kinds import served_model
from tests.support.http import anthropic_error, openai_error
from tests.support.server import RunningServer
from tests.support.vision_models import noise_png

A, B = noise_png(1), noise_png(2)


def data_url(png: bytes, media_type: str = "image/png") -> str:
    return f"data:{media_type};base64," + base64.b64encode(png).decode()


@pytest.fixture(scope="module")
def server(tiny_vlm_dir, tiny_model_dir):
    settings = EngineSettings(temperature=0.0, max_tokens=8)
    engine = MlxEngine([served_model("tiny-vl", tiny_vlm_dir, settings), served_model("tiny-text", tiny_model_dir, settings)], settings).start()
    with RunningServer(engine) as running:
        yield running
    engine.stop(grace=1)


@pytest.fixture(scope="module")
def oa(server) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)


@pytest.fixture(scope="module")
def claude(server) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=server.url, api_key="unused", max_retries=0)


def chat(oa, png: bytes, stream: bool, model: str = "tiny-vl") -> str:
    parts = [{"type": "text", "text": "What is in this picture?"}, {"type": "image_url", "image_url": {"url": data_url(png), "detail": "low"}}]
    messages = [{"role": "user", "content": parts}]
    if not stream:
        return oa.chat.completions.create(model=model, messages=messages).choices[0].message.content
    chunks = oa.chat.completions.create(model=model, messages=messages, stream=True)
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


def respond(oa, png: bytes, stream: bool) -> str:
    content = [{"type": "input_text", "text": "What is in this picture?"}, {"type": "input_image", "image_url": data_url(png), "detail": "auto"}]
    request = {"model": "tiny-vl", "input": [{"role": "user", "content": content}]}
    if not stream:
        return oa.responses.create(**request).output_text
    return "".join(e.delta for e in oa.responses.create(**request, stream=True) if e.type == "response.output_text.delta")


def message(claude, png: bytes, stream: bool) -> str:
    source = {"type": "base64", "media_type": "image/png", "data": base64.b64encode(png).decode()}
    request = {
        "model": "tiny-vl",
        "max_tokens": 8,
        "messages": [{"role": "user", "content": [{"type": "image", "source": source}, {"type": "text", "text": "What is this?"}]}],
    }
    if not stream:
        return "".join(b.text for b in claude.messages.create(**request).content if b.type == "text")
    with claude.messages.stream(**request) as events:
        return "".join(events.text_stream)


def ollama_chat(server, png: bytes, stream: bool) -> str:
    import ollama

    client = ollama.Client(host=server.url)
    message = {"role": "user", "content": "What is in this picture?", "images": [base64.b64encode(png).decode()]}
    if not stream:
        return client.chat(model="tiny-vl", messages=[message]).message.content
    return "".join(part.message.content or "" for part in client.chat(model="tiny-vl", messages=[message], stream=True))


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("api", ["chat", "responses", "anthropic", "ollama"])
def test_the_image_reaches_the_model(api, stream, oa, claude, server):
    ask = {"chat": lambda png: chat(oa, png, stream), "responses": lambda png: respond(oa, png, stream),
           "anthropic": lambda png: message(claude, png, stream), "ollama": lambda png: ollama_chat(server, png, stream)}[api]
    a, b, again = ask(A), ask(B), ask(A)
    assert a and b
    assert a != b
    assert again == a


def test_models_say_which_take_images(oa, server):
    models = {m.id: m.model_dump() for m in oa.models.list().data}
    assert "vision" in models["tiny-vl"]["capabilities"]
    assert "vision" not in models["tiny-text"]["capabilities"]
    shown = {name: httpx.post(server.url + "/api/show", json={"model": name}).json()["capabilities"] for name in ("tiny-vl", "tiny-text")}
    assert "vision" in shown["tiny-vl"] and "vision" not in shown["tiny-text"]  # what Ollama's clients read


def test_swaps_between_a_text_and_a_vision_model(oa):
    first = chat(oa, A, False)
    text = oa.chat.completions.create(model="tiny-text", messages=[{"role": "user", "content": "hello"}]).choices[0].message.content
    assert text and chat(oa, A, False) == first
    assert oa.chat.completions.create(model="tiny-vl", messages=[{"role": "user", "content": "hello"}]).choices[0].message.content


def test_several_images_in_one_message_all_count(oa):
    def ask(*pngs):
        parts = [{"type": "image_url", "image_url": {"url": data_url(p)}} for p in pngs] + [{"type": "text", "text": "Compare."}]
        return oa.chat.completions.create(model="tiny-vl", messages=[{"role": "user", "content": parts}]).choices[0].message.content

    # The first image the same, the second changed: a model that saw only the first would answer alike.
    answers = [ask(A, second) for second in (A, B, noise_png(3), noise_png(4))]
    assert len(set(answers)) > 1
    assert ask(A, B) == answers[1]


def test_images_in_earlier_turns_reach_the_model(oa):
    def ask(first: bytes):
        messages = [
            {"role": "user", "content": [{"type": "image_url", "image_url": {"url": data_url(first)}}, {"type": "text", "text": "Look."}]},
            {"role": "assistant", "content": "I see it."},
            {"role": "user", "content": "What was it?"},
        ]
        return oa.chat.completions.create(model="tiny-vl", messages=messages).choices[0].message.content

    assert ask(A) != ask(B)


# ---- bad input -------------------------------------------------------------------------------------


def png_header(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` pixels (no pixel data needed to refuse it)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = lambda kind, data: struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


def bmp() -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (8, 8)).save(out, format="BMP")
    return out.getvalue()


BAD_URLS = {
    "invalid base64": ("data:image/png;base64,@@@not base64@@@", "base64"),
    "not an image": (data_url(b"hello, I am text"), "not an image"),
    "unsupported format": (data_url(bmp(), "image/bmp"), "Unsupported image format"),
    "unsupported bytes": (data_url(bmp()), "Unsupported image format BMP"),
    "too many pixels": (data_url(png_header(9000, 9000)), "more than the limit"),
    "not a data URI": ("data:image/png,raw", "data URI"),
    "file URL": ("file:///etc/passwd", "http(s) URL"),
    "URL fetching off": ("http://example.com/cat.png", "--allow-image-urls"),
}


@pytest.mark.parametrize("case", list(BAD_URLS))
def test_bad_images_are_400s_naming_the_part(case, server):
    url, words = BAD_URLS[case]
    body = {"model": "tiny-vl", "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}}]}]}
    error = openai_error(httpx.post(server.url + "/v1/chat/completions", json=body), 400)
    assert error["param"] == "messages[0].content[0].image_url.url" and words in error["message"]


def test_too_many_images_is_a_400(server):
    parts = [{"type": "image_url", "image_url": {"url": data_url(A)}}] * 17
    body = {"model": "tiny-vl", "messages": [{"role": "user", "content": parts}]}
    error = openai_error(httpx.post(server.url + "/v1/chat/completions", json=body), 400)
    assert "17 images" in error["message"] and error["param"] == "messages[0].content"


def test_an_image_to_a_text_model_is_a_400(server):
    body = {"model": "tiny-text", "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": data_url(A)}}]}]}
    error = openai_error(httpx.post(server.url + "/v1/chat/completions", json=body), 400)
    assert "does not accept images" in error["message"] and "tiny-text" in error["message"]
    assert error["param"] == "messages[0].content[0].image_url.url"
    ollama = httpx.post(server.url + "/api/generate", json={"model": "tiny-text", "prompt": "?", "images": [base64.b64encode(A).decode()]})
    assert ollama.status_code == 400 and "does not accept images" in ollama.json()["error"]


def test_anthropic_bad_images_name_the_field(server):
    def post(source):
        body = {"model": "tiny-vl", "max_tokens": 4, "messages": [{"role": "user", "content": [{"type": "image", "source": source}]}]}
        return anthropic_error(httpx.post(server.url + "/v1/messages", json=body), 400, "invalid_request_error")

    assert "base64" in post({"type": "base64", "media_type": "image/png", "data": "!!"})
    assert "Unsupported image format" in post({"type": "base64", "media_type": "image/tiff", "data": base64.b64encode(A).decode()})
    assert "--allow-image-urls" in post({"type": "url", "url": "https://example.com/a.png"})


def test_responses_file_ids_are_refused(server):
    content = [{"type": "input_image", "file_id": "file-123"}]
    body = {"model": "tiny-vl", "input": [{"role": "user", "content": content}]}
    error = openai_error(httpx.post(server.url + "/v1/responses", json=body), 400)
    assert error["param"] == "input[0].content[0].file_id"


# ---- stored chains ---------------------------------------------------------------------------------


def test_a_responses_chain_sends_turn_1s_image_again_in_turn_3(oa):
    first = [{"type": "input_image", "image_url": data_url(A)}, {"type": "input_text", "text": "Look."}]
    turns = [first, "And now?", "What was in the picture?"]
    previous, answers = None, []
    for content in turns:
        r = oa.responses.create(model="tiny-vl", input=[{"role": "user", "content": content}], previous_response_id=previous)
        previous, answers = r.id, answers + [r.output_text]
    # The same conversation sent whole, without the store: the same prompt, so the same answer...
    history = []
    for content, answer in zip(turns[:2], answers):
        history += [{"role": "user", "content": content}, {"role": "assistant", "content": answer}]
    whole = oa.responses.create(model="tiny-vl", input=history + [{"role": "user", "content": turns[2]}])
    assert (whole.output_text, whole.usage.input_tokens) == (answers[2], r.usage.input_tokens)
    # ...and without the image, a shorter prompt: the chain's third turn counted the image's tokens.
    history[0]["content"] = first[1:]
    textual = oa.responses.create(model="tiny-vl", input=history + [{"role": "user", "content": turns[2]}])
    assert textual.usage.input_tokens < r.usage.input_tokens


def pixels(data_url_or_png) -> bytes:
    from PIL import Image

    png = base64.b64decode(data_url_or_png.split(",", 1)[1]) if isinstance(data_url_or_png, str) else data_url_or_png
    return Image.open(io.BytesIO(png)).convert("RGB").tobytes()


def test_stored_input_items_show_their_images(oa):
    content = [{"type": "input_image", "image_url": data_url(A)}, {"type": "input_text", "text": "Look."}]
    r = oa.responses.create(model="tiny-vl", input=[{"role": "user", "content": content}])
    (item,) = oa.responses.input_items.list(r.id).data
    image, text = item.content
    assert (image.type, text.type, text.text) == ("input_image", "input_text", "Look.")
    assert pixels(image.image_url) == pixels(A)  # stored losslessly
    items = [{"role": "user", "content": "Look at shot.png"},
             {"type": "function_call", "call_id": "c1", "name": "view_image", "arguments": "{}"},
             {"type": "function_call_output", "call_id": "c1", "output": [{"type": "input_image", "image_url": data_url(B)}]}]
    r = oa.responses.create(model="tiny-vl", input=items)
    output = oa.responses.input_items.list(r.id).data[0]  # newest first
    assert output.type == "function_call_output" and [p.type for p in output.output] == ["input_image"]
    assert pixels(output.output[0].image_url) == pixels(B)


# ---- mlxcli chat --image ---------------------------------------------------------------------------


@pytest.mark.parametrize("api", ["chat", "responses", "anthropic"])
def test_chat_sends_an_image_over_each_api(api, server, tmp_path):
    from typer.testing import CliRunner

    from mlxcli.cli import app

    def ask(png: bytes) -> str:
        path = tmp_path / "picture.png"
        path.write_bytes(png)
        args = ["chat", "--url", server.url, "--api", api, "--model", "tiny-vl", "--image", str(path), "-p", "What is this?", "--max-tokens", "8", "--no-store"]
        result = CliRunner().invoke(app, args, env={"MLXCLI_HOME": str(tmp_path)})
        assert result.exit_code == 0, result.output
        return result.stdout

    a, b = ask(A), ask(B)
    assert a.strip() and a != b and ask(A) == a


def test_chat_refuses_a_file_that_is_not_an_image(tmp_path):
    from typer.testing import CliRunner

    from mlxcli.cli import app

    path = tmp_path / "notes.txt"
    path.write_text("not a picture")
    result = CliRunner().invoke(app, ["chat", "--image", str(path), "-p", "hi"], env={"MLXCLI_HOME": str(tmp_path)})
    assert result.exit_code == 2 and "not an image" in result.stderr


# ---- mlxcli bench --image-size -----------------------------------------------------------------------


@pytest.mark.parametrize("api", ["chat", "anthropic"])
def test_bench_sends_an_image_with_each_request(api, server, tiny_vlm_dir):
    from typer.testing import CliRunner

    from mlxcli.cli import app

    def measured(*extra: str) -> dict:
        args = ["bench", "--url", server.url, "--api", api, "--model", str(tiny_vlm_dir), "--request-model", "tiny-vl",
                "--clients", "2", "--prompt-tokens", "40", "--gen-tokens", "4", "--repeat", "1", "--warmup", "0", "--json", *extra]
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0, result.output
        row = json.loads(result.stdout)["results"][0]
        assert row["errors"] == 0
        return row["prompt_tokens_reported"]  # as the server counts

    text, pictured = measured(), measured("--image-size", "112")
    assert text["min"] == text["max"] == 40
    # 112 pixels square: 8x8 patches merged 2x2, 16 image tokens, plus the image's start and end markers.
    assert pictured["min"] == pictured["max"] == 40 + 16 + 2


@pytest.mark.parametrize("image_turns", ["first", "every"])
def test_bench_turns_show_the_image_read_from_the_prompt_cache(image_turns, server, tiny_vlm_dir):
    from typer.testing import CliRunner

    from mlxcli.cli import app

    args = ["bench", "--url", server.url, "--model", str(tiny_vlm_dir), "--request-model", "tiny-vl", "--turns", "3",
            "--image-size", "112", "--image-turns", image_turns, "--prompt-tokens", "40", "--gen-tokens", "4",
            "--repeat", "1", "--warmup", "0", "--json"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["settings"]["image_turns"] == image_turns
    prompt = [row["prompt_tokens"]["median"] for row in doc["results"]]
    cached = [row["cached_tokens_reported"]["median"] for row in doc["results"]]
    image = 16 + 2  # a 112-pixel image's tokens, with its start and end markers
    new_images = [1, 0, 0] if image_turns == "first" else [1, 1, 1]
    for turn in (1, 2):  # each turn's prompt: the last one, its answer, then the new message (and its image)
        assert prompt[turn] - prompt[turn - 1] >= 40 + image * new_images[turn]
        assert cached[turn] >= prompt[turn - 1]  # the whole last prompt, its image included, read from the cache


def test_concurrent_image_requests_answer_as_each_alone(oa, server):
    pictures = [A, B, noise_png(3, 168), noise_png(4)]
    alone = [chat(oa, png, False) for png in pictures]
    answers: list = [None] * len(pictures)

    def ask(i: int) -> None:
        answers[i] = chat(oa, pictures[i], False)

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(len(pictures))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert answers == alone
    kept = httpx.get(server.url + "/health").json()["image_features"]["tiny-vl"]
    assert kept["images"] >= 4 and kept["bytes"] > 0


# ---- images a tool returned ----------------------------------------------------------------------

def read_a_screenshot(claude, png: bytes, model: str = "tiny-vl") -> str:
    """Claude Code's Read of an image file: the image comes back inside the tool_result. (No tools are
    offered: their long system prompt drowns the random model's answer whatever the image.)"""
    source = {"type": "base64", "media_type": "image/png", "data": base64.b64encode(png).decode()}
    messages = [
        {"role": "user", "content": "What does shot.png show?"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "Read", "input": {"file_path": "shot.png"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": [
            {"type": "image", "source": source}, {"type": "text", "text": "What is in this picture?"}]}]},
    ]
    reply = claude.messages.create(model=model, max_tokens=8, messages=messages)
    return "".join(b.text for b in reply.content if b.type == "text")


def view_an_image(oa, png: bytes, model: str = "tiny-vl") -> str:
    """Codex's view_image: a function_call_output whose output is a list with an input_image."""
    items = [
        {"role": "user", "content": "What does shot.png show?"},
        {"type": "function_call", "call_id": "call_1", "name": "view_image", "arguments": json.dumps({"path": "shot.png"})},
        {"type": "function_call_output", "call_id": "call_1", "output": [
            {"type": "input_image", "image_url": data_url(png)}, {"type": "input_text", "text": "What is in this picture?"}]},
    ]
    return oa.responses.create(model=model, input=items).output_text


@pytest.mark.parametrize("api", ["anthropic", "responses"])
def test_an_image_a_tool_returned_reaches_a_vision_model(api, oa, claude):
    ask = {"anthropic": lambda png: read_a_screenshot(claude, png), "responses": lambda png: view_an_image(oa, png)}[api]
    a, b, again = ask(A), ask(B), ask(A)
    assert a != b and again == a


def test_a_text_model_is_told_a_tool_s_image_is_not_shown_and_the_session_goes_on(oa, claude, server):
    assert isinstance(read_a_screenshot(claude, A, model="tiny-text"), str)  # an answer, not a 400
    assert isinstance(view_an_image(oa, A, model="tiny-text"), str)
    from mlxcli.core.request import ChatRequest, ImageInput, Message

    image = ImageInput(image=None, digest="x", width=1, height=1)
    request = ChatRequest([Message("user", "Read it"), Message("tool", "shot.png:", tool_call_id="t", images=[image])], model="tiny-text")
    assert "[1 image(s) not shown: the model `tiny-text` does not accept images]" in server.engine.render(request).text


# ---- tools, and the extra ------------------------------------------------------------------------


def test_a_vision_model_calls_tools_like_a_text_model(oa):
    weather = {"type": "object", "properties": {"city": {"enum": ["Paris", "Rome"]}}, "required": ["city"], "additionalProperties": False}
    tool = {"type": "function", "function": {"name": "get_weather", "parameters": weather, "strict": True}}
    parts = [{"type": "image_url", "image_url": {"url": data_url(A)}}, {"type": "text", "text": "Which city is this? Look up its weather."}]
    r = oa.chat.completions.create(
        model="tiny-vl", messages=[{"role": "user", "content": parts}], tools=[tool], tool_choice="required", parallel_tool_calls=False, max_tokens=40
    )
    calls = r.choices[0].message.tool_calls
    assert r.choices[0].finish_reason == "tool_calls" and calls[0].function.name == "get_weather"
    assert json.loads(calls[0].function.arguments)["city"] in ("Paris", "Rome")


def test_without_mlx_vlm_a_vision_model_names_the_extra(tiny_vlm_dir, monkeypatch):
    from mlxcli.core.errors import ModelError

    for name in [m for m in sys.modules if m == "mlx_vlm" or m.startswith("mlx_vlm.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "mlx_vlm", None)  # import mlx_vlm now raises ImportError
    with pytest.raises(ModelError, match=r"mlxcli\[vision\]"):
        served_model("tiny-vl", tiny_vlm_dir, EngineSettings())




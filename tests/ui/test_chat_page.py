"""The chat page at /ui in headless Chromium, against a real server and engine (scripted models,
and the default model once): what a person using it would see and do."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import httpx
import pytest
from mlx_lm.utils import load_tokenizer
from playwright import sync_api  # the test extra has it

from mlxcli.engine.engine import EngineSettings, MlxEngine
from mlxcli.engine.kinds import served_model
from mlxcli.server.settings import ServerSettings
from tests.support.http import wait_for
from tests.support.models import scripted_model, scripted_of
from tests.support.server import RunningServer
from tests.support.tool_models import chat_template, make_tool_tokenizer_dir

expect = sync_api.expect
expect.set_options(timeout=120_000)  # waits for a condition, never a speed: a loaded 2-core machine is slow

KEY = "sk-page"
STREAMED = " ".join(f"part{i}" for i in range(30))
LONG = " ".join(f"w{i}" for i in range(600))
THOUGHT = "The user asks for a sum: 2 + 2 = 4."
ANSWER = "**Four.** In Python:\n\n```python\nprint(2 + 2)\n```\n\n- exact\n- *fast*\n\n| a | b |\n|---|---|\n| 2 | 2 |"
XSS = (
    'Look: <img src=x onerror="window.__pwned=1"> and <script>window.__pwned=2</script> '
    "[click me](javascript:window.__pwned=3) `<b>code</b>`\n\n```html\n<script>window.__pwned=4</script>\n```"
)


def respond(prompt: str) -> str:
    last = prompt.rsplit("<|im_start|>user", 1)[-1]  # the newest user message
    if "boom" in last:
        raise RuntimeError("scripted failure inside generation")
    for word, reply in (("stream", STREAMED), ("long", LONG), ("xss", XSS), ("think", f"<think>{THOUGHT}</think>{ANSWER}")):
        if word in last:
            return reply
    return "Hello! How can I help?"


@pytest.fixture(scope="module")
def engine(tokenizer_dir, tiny_bert_dir, tmp_path_factory):
    # A template with <think> blocks, so that answers can carry reasoning; a second model to pick;
    # an embedding model, which the picker must leave out.
    directory = make_tool_tokenizer_dir(tokenizer_dir, tmp_path_factory.mktemp("think-tokenizer"), chat_template())
    tokenizer = load_tokenizer(directory)
    models = [
        scripted_model(directory, respond, tokenizer=tokenizer),
        scripted_model(directory, lambda _: "The other model here.", name="other", tokenizer=tokenizer),
    ]
    settings = EngineSettings(temperature=0.0, max_loaded_models=2)
    engine = MlxEngine([*models, served_model("tiny-embed", tiny_bert_dir, settings)], settings).start()
    yield engine
    engine.stop(grace=1)


@pytest.fixture(scope="module")
def server(engine):
    with RunningServer(engine) as srv:
        yield srv


@pytest.fixture(autouse=True)
def _fast_model(engine):
    yield
    scripted_of(engine).step_delay = 0.0


def send(page, text: str):
    page.fill("#input", text)
    page.press("#input", "Enter")
    return page.locator(".message.assistant").last


def answered(page, text: str, state: str = "done", timeout: float = 120_000):
    answer = send(page, text)
    expect(answer).to_have_attribute("data-state", state, timeout=timeout)
    return answer


def health(server) -> dict:
    return httpx.get(server.url + "/health").json()


def test_an_answer_streams_in_parts_with_its_token_counts(open_page, server, engine):
    scripted_of(engine).step_delay = 0.03
    page = open_page(server.url + "/ui")
    expect(page.locator("#model")).to_have_value("scripted")
    page.evaluate(
        """() => { window.__lengths = [];
        new MutationObserver(() => { const answers = document.querySelectorAll('.message.assistant .content');
          if (answers.length) window.__lengths.push(answers[answers.length - 1].textContent.length); })
        .observe(document.getElementById('messages'), {subtree: true, childList: true, characterData: true}); }"""
    )
    answer = answered(page, "stream it please")
    assert answer.locator(".content").inner_text() == STREAMED
    partial = {n for n in page.evaluate("window.__lengths") if 0 < n < len(STREAMED)}
    assert len(partial) >= 3, partial  # it grew on screen, piece by piece
    tokens = len(scripted_of(engine)._tokenizer.encode(STREAMED, add_special_tokens=False))
    stats = answer.locator(".stats").inner_text()
    assert re.fullmatch(rf"{tokens} tokens · [\d.]+ tok/s · [\d.]+ s to first token · prompt \d+ tokens( \(\d+ cached\))?", stats), stats


def test_the_picked_model_system_prompt_and_limits_reach_the_server(open_page, server, engine):
    page = open_page(server.url + "/ui")
    page.click("#system-toggle")
    page.fill("#system", "Answer like a pirate.")
    page.fill("#max-tokens", "3")
    page.fill("#temperature", "0.7")
    with page.expect_request("**/v1/chat/completions") as sent:
        answer = answered(page, "stream it please")
    body = sent.value.post_data_json
    assert (body["temperature"], body["max_tokens"], body["stream"]) == (0.7, 3, True)
    assert "Answer like a pirate." in scripted_of(engine).prompts[-1]
    expect(answer.locator(".stats")).to_contain_text("3 tokens")
    expect(answer.locator(".stats")).to_contain_text("cut off at max tokens")
    page.fill("#max-tokens", "")
    expect(page.locator("#model option")).to_have_text(["scripted", "other"])  # not the embedding model
    page.select_option("#model", "other")
    answer = answered(page, "who are you?")
    expect(answer.locator(".role")).to_have_text("other")
    expect(answer.locator(".content")).to_have_text("The other model here.")


def test_stop_cancels_the_generation_on_the_server(open_page, server, engine):
    model = scripted_of(engine)
    model.step_delay = 0.05
    page = open_page(server.url + "/ui")
    steps = model.calls
    answer = send(page, "a long story")
    expect(answer.locator(".content")).to_contain_text("w3 w4")
    assert health(server)["active_requests"] == 1
    page.click("#stop")
    expect(answer).to_have_attribute("data-state", "stopped")
    assert wait_for(lambda: health(server)["active_requests"] == 0 and health(server)["in_flight"] == 0)
    reply_tokens = len(model._tokenizer.encode(LONG, add_special_tokens=False))
    assert model.calls - steps < reply_tokens // 2  # generating stopped, far before the end of the reply
    shown = answer.locator(".content").inner_text()
    assert shown.startswith("w0 w1 w2 w3") and len(shown) < len(LONG)  # what arrived stays
    expect(answer.locator(".stats")).to_have_text("stopped")
    expect(page.locator("#send")).to_be_visible()
    answer = answered(page, "hello again")  # the page and the server go on
    expect(answer.locator(".content")).to_have_text("Hello! How can I help?")


def test_conversations_survive_a_reload_and_export_as_json_and_markdown(open_page, server):
    page = open_page(server.url + "/ui")
    page.click("#system-toggle")
    page.fill("#system", "Be brief.")
    answered(page, "think: 2+2?")
    page.reload()
    first = page.locator("#conversations li").first
    expect(first.locator(".open")).to_have_text("think: 2+2?")
    expect(page.locator(".message.user .content")).to_have_text("think: 2+2?")
    answer = page.locator(".message.assistant")
    expect(answer.locator(".content strong")).to_have_text("Four.")
    expect(answer.locator(".content pre code")).to_have_text("print(2 + 2)")
    expect(answer.locator(".content li em")).to_have_text("fast")
    expect(answer.locator(".content table td")).to_have_text(["2", "2"])
    reasoning = answer.locator("details.reasoning")
    assert reasoning.evaluate("details => details.open") is False  # collapsed
    assert reasoning.locator(".reasoning-text").text_content() == THOUGHT
    reasoning.locator("summary").click()
    expect(reasoning.locator(".reasoning-text")).to_be_visible()

    with page.expect_download() as download:
        page.click("#export-json")
    exported = json.loads(Path(download.value.path()).read_text())
    assert download.value.suggested_filename == "think-2-2.json"
    assert exported["format"] == "mlxcli.ui.conversation" and exported["version"] == 1
    assert exported["system"] == "Be brief." and exported["title"] == "think: 2+2?"
    user, assistant = exported["messages"]
    assert (user["role"], user["content"]) == ("user", "think: 2+2?")
    assert (assistant["role"], assistant["content"], assistant["reasoning"]) == ("assistant", ANSWER, THOUGHT)
    assert assistant["model"] == "scripted" and assistant["usage"]["completion_tokens"] > 0
    with page.expect_download() as download:
        page.click("#export-md")
    markdown = Path(download.value.path()).read_text()
    assert "# think: 2+2?" in markdown and "Be brief." in markdown and "## You\n\nthink: 2+2?" in markdown
    assert "## Assistant (scripted)" in markdown and ANSWER in markdown and f"> {THOUGHT}" in markdown

    first.locator(".rename").click()
    page.fill(".rename-input", "Arithmetic")
    page.press(".rename-input", "Enter")
    page.click("#new-chat")
    answered(page, "hello")
    items = page.locator("#conversations li")
    expect(items).to_have_count(2)
    page.once("dialog", lambda dialog: dialog.accept())
    items.filter(has_text="Arithmetic").locator(".delete").click()
    expect(items).to_have_count(1)
    page.reload()
    expect(items).to_have_count(1)
    expect(items.first.locator(".open")).to_have_text("hello")


def test_model_output_is_shown_as_text_and_runs_nothing(open_page, server):
    page = open_page(server.url + "/ui")
    answer = answered(page, "xss <b>my own</b> markup")
    expect(page.locator(".message.user .content")).to_have_text("xss <b>my own</b> markup")
    for _ in range(2):  # as streamed, then as rendered again from storage
        content = answer.locator(".content")
        assert page.locator("#messages img, #messages script, #messages iframe, #messages b").count() == 0
        assert content.locator("a").count() == 0  # a javascript: link is no link
        text = content.inner_text()
        assert '<img src=x onerror="window.__pwned=1">' in text and "<script>window.__pwned=2</script>" in text
        assert "[click me](javascript:window.__pwned=3)" not in text and "click me" in text
        expect(content.locator("p code")).to_have_text("<b>code</b>")
        expect(content.locator("pre code")).to_have_text("<script>window.__pwned=4</script>")
        assert page.evaluate("window.__pwned") is None
        page.reload()
        answer = page.locator(".message.assistant").last
        expect(answer).to_have_attribute("data-state", "done")


def test_a_failed_answer_says_why_and_is_not_sent_again(open_page, server, engine):
    page = open_page(server.url + "/ui")
    failed = answered(page, "boom", state="error")
    expect(failed.locator(".stats")).to_contain_text("error: generation failed")
    answered(page, "hello")
    prompt = scripted_of(engine).prompts[-1]
    assert "boom" not in prompt and prompt.count("<|im_start|>user") == 1  # the failed exchange is not sent again
    expect(page.locator(".message")).to_have_count(4)  # but it stays on screen


@pytest.fixture(scope="module")
def keyed_server(engine):
    with RunningServer(engine, ServerSettings(port=0, api_keys=[KEY])) as srv:
        yield srv


def test_an_api_key_is_asked_once_and_kept_in_the_browser(open_page, keyed_server):
    page = open_page(keyed_server.url + "/ui")
    dialog = page.locator("#key-dialog")
    expect(dialog).to_be_visible()
    page.fill("#key-input", "sk-wrong")
    page.click("#key-save")
    expect(page.locator("#key-message")).to_have_text("The API key was refused: enter another one.")
    page.fill("#key-input", KEY)
    page.click("#key-save")
    expect(page.locator("#model")).to_have_value("scripted")
    answered(page, "hello")
    page.reload()
    expect(page.locator("#model")).to_have_value("scripted")
    expect(dialog).to_be_hidden()
    expect(answered(page, "hello again").locator(".content")).to_have_text("Hello! How can I help?")


@pytest.mark.default_model
def test_the_default_model_answers_in_the_page(open_page, default_model_dir, tmp_path):
    """The real default model behind the page; the README's screenshot is this test's
    (``MLXCLI_UI_SCREENSHOT=docs/ui.png scripts/test tests/ui -k default_model``)."""
    engine = MlxEngine.from_path("smollm2-135m", default_model_dir, EngineSettings(temperature=0.0)).start()
    try:
        with RunningServer(engine) as srv:
            page = open_page(srv.url + "/ui")
            page.fill("#max-tokens", "200")
            # 200 tokens of the real model: minutes when other work shares the 2 cores.
            answer = answered(page, "Write a Python function that reverses a string.", timeout=600_000)
            expect(answer.locator(".content pre code")).to_contain_text("def ")
            expect(answer.locator(".stats")).to_contain_text("tok/s")
            shot = Path(os.environ.get("MLXCLI_UI_SCREENSHOT") or tmp_path / "ui.png")
            page.screenshot(path=str(shot))
            assert shot.read_bytes().startswith(b"\x89PNG")
    finally:
        engine.stop(grace=1)

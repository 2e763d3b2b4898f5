"""The chat page with an image model chosen, in headless Chromium: the prompt goes to /v1/images/generations and
the generated image is shown in the conversation (and kept there across a reload)."""

from __future__ import annotations

import pytest

from mlxcli.engine.engine import EngineSettings, MlxEngine
from mlxcli.engine.kinds import served_model
from tests.support.models import scripted_model
from tests.support.server import RunningServer

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (the test extra has it)")
expect = sync_api.expect
expect.set_options(timeout=180_000)  # waits for a condition, never a speed


@pytest.fixture(scope="module")
def server(tokenizer_dir, tiny_zimage_dir):
    settings = EngineSettings(temperature=0.0)
    engine = MlxEngine([scripted_model(tokenizer_dir, lambda p: "Hello from the chat model."),
                        served_model("z-image", tiny_zimage_dir, settings)], settings).start()
    with RunningServer(engine) as srv:
        yield srv
    engine.stop(grace=1)


def test_an_image_model_answers_with_an_image(open_page, server):
    page = open_page(server.url + "/ui")
    expect(page.locator("#model option")).to_have_text(["scripted", "z-image (image)"])
    expect(page.locator("#size-label")).to_be_hidden()  # a chat model: no size to pick
    page.select_option("#model", "z-image")
    expect(page.locator("#size-label")).to_be_visible()
    page.select_option("#size", "256x256")
    with page.expect_request("**/v1/images/generations") as sent:
        page.fill("#input", "a red bicycle")
        page.press("#input", "Enter")
    assert sent.value.post_data_json["prompt"] == "a red bicycle" and sent.value.post_data_json["size"] == "256x256"
    answer = page.locator(".message.assistant").last
    expect(answer).to_have_attribute("data-state", "done")
    image = answer.locator(".content.image img")
    expect(image).to_be_visible()
    assert image.evaluate("img => [img.naturalWidth, img.naturalHeight]") == [256, 256]  # decoded: a real picture
    expect(answer.locator(".stats")).to_contain_text("256x256")

    # Back to the chat model: the image exchange is not sent to it, and it answers as usual.
    page.select_option("#model", "scripted")
    with page.expect_request("**/v1/chat/completions") as chat:
        page.fill("#input", "hi")
        page.press("#input", "Enter")
    expect(page.locator(".message.assistant").last.locator(".content")).to_have_text("Hello from the chat model.")
    assert [m["content"] for m in chat.value.post_data_json["messages"]] == ["hi"]

    page.reload()  # the image is kept with the conversation
    expect(page.locator(".message.assistant .content.image img")).to_have_count(1)
    assert page.locator(".content.image img").evaluate("img => img.naturalWidth") == 256


def test_an_image_error_is_shown(open_page, server):
    page = open_page(server.url + "/ui")
    page.select_option("#model", "z-image")
    page.select_option("#size", "256x256")
    page.fill("#input", " ")  # only spaces: nothing is sent
    page.press("#input", "Enter")
    expect(page.locator(".message.assistant")).to_have_count(0)
    page.evaluate("() => { const o = new Option('100x100', '100x100'); document.getElementById('size').append(o); }")
    page.select_option("#size", "100x100")
    page.fill("#input", "a cat")
    page.press("#input", "Enter")
    answer = page.locator(".message.assistant").last
    expect(answer).to_have_attribute("data-state", "error")
    expect(answer.locator(".stats")).to_contain_text("not supported by this model")

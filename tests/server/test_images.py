"""POST /v1/images/generations and /v1/images/edits through the real server, judged by the official OpenAI SDK.

One server for the module: a scripted chat model beside a tiny random Z-Image (tests/support/image_models.py),
run by mflux at 64x64 in two steps. Random weights draw noise, but seeded noise: the checks are on pixels
(sizes, formats, the same seed giving the same image, where an edit under a mask changed the image).
"""

from __future__ import annotations

import base64
import io

import httpx
import numpy as np
import openai
import pytest

from mlxcli.engine.engine import EngineSettings, MlxEngine
from mlxcli.engine.kinds import served_model
from tests.support.http import openai_error
from tests.support.models import scripted_model
from tests.support.server import RunningServer



@pytest.fixture(scope="module")
def server(tokenizer_dir, tiny_zimage_dir):
    settings = EngineSettings(temperature=0.0)
    chat = scripted_model(tokenizer_dir, lambda prompt: "a picture of a cat")
    engine = MlxEngine([chat, served_model("z-image", tiny_zimage_dir, settings)], settings).start()
    with RunningServer(engine) as running:
        yield running
    engine.stop(grace=1)


@pytest.fixture(scope="module")
def client(server) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0, timeout=300)


def picture(b64: str, expected_format: str = "PNG"):
    from PIL import Image

    image = Image.open(io.BytesIO(base64.b64decode(b64)))
    assert image.format == expected_format
    return image


def pixels(b64: str) -> np.ndarray:
    return np.asarray(picture(b64).convert("RGB"), dtype=np.float64)


def png(image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def source_image():
    """A picture with structure: two halves of different colours and a gradient."""
    from PIL import Image

    a = np.zeros((64, 64, 3), dtype=np.uint8)
    a[:, :32] = [200, 40, 40]
    a[:, 32:] = [40, 40, 200]
    a[:, :, 1] = np.linspace(0, 255, 64, dtype=np.uint8)[None, :]
    return Image.fromarray(a)


def test_generate_returns_a_png_of_the_size_asked_for(client):
    r = client.images.generate(model="z-image", prompt="a red fox in the snow", size="64x64", extra_body={"steps": 2, "seed": 7})
    assert len(r.data) == 1 and r.size == "64x64" and r.output_format == "png"
    assert picture(r.data[0].b64_json).size == (64, 64)
    wide = client.images.generate(model="z-image", prompt="a red fox", size="96x64", extra_body={"steps": 1, "seed": 1})
    assert picture(wide.data[0].b64_json).size == (96, 64)


def test_the_same_seed_gives_the_same_image_and_another_seed_another(client):
    def one(seed):
        return pixels(client.images.generate(model="z-image", prompt="a lighthouse", size="64x64",
                                             extra_body={"steps": 2, "seed": seed}).data[0].b64_json)

    first, again, other = one(11), one(11), one(12)
    assert np.array_equal(first, again)
    assert np.abs(first - other).mean() > 1.0


def test_n_images_each_with_its_own_seed(client):
    r = client.images.generate(model="z-image", prompt="a boat", n=2, size="64x64", extra_body={"steps": 1, "seed": 3})
    a, b = (pixels(d.b64_json) for d in r.data)
    assert a.shape == b.shape == (64, 64, 3) and np.abs(a - b).mean() > 1.0
    alone = client.images.generate(model="z-image", prompt="a boat", size="64x64", extra_body={"steps": 1, "seed": 4})
    assert np.array_equal(pixels(alone.data[0].b64_json), b)  # the second image's seed is the first's + 1


@pytest.mark.parametrize("fmt, pil", [("jpeg", "JPEG"), ("webp", "WEBP")])
def test_output_formats(client, fmt, pil):
    r = client.images.generate(model="z-image", prompt="a tree", output_format=fmt, output_compression=80,
                               size="64x64", extra_body={"steps": 1})
    assert r.output_format == fmt and picture(r.data[0].b64_json, pil).size == (64, 64)


def test_url_response_format_is_a_data_url(client):
    r = client.images.generate(model="z-image", prompt="a tree", response_format="url", size="64x64", extra_body={"steps": 1})
    assert r.data[0].url.startswith("data:image/png;base64,")
    assert picture(r.data[0].url.partition(",")[2]).size == (64, 64)


def test_edit_returns_an_image_the_size_of_its_input(client):
    r = client.images.edit(model="z-image", image=("in.png", png(source_image()), "image/png"), prompt="make it night",
                           extra_body={"steps": 2, "seed": 5})
    assert picture(r.data[0].b64_json).size == (64, 64)
    assert r.output_format == "png"


def test_a_masked_edit_changes_the_masked_region_and_keeps_the_rest(client):
    from PIL import Image

    source = source_image()
    mask = np.full((64, 64, 4), 255, dtype=np.uint8)
    mask[16:48, 16:48, 3] = 0  # transparent: where the image may change
    r = client.images.edit(model="z-image", image=("in.png", png(source), "image/png"),
                           mask=("mask.png", png(Image.fromarray(mask, "RGBA")), "image/png"),
                           prompt="a yellow square", extra_body={"steps": 2, "seed": 9})
    out, before = pixels(r.data[0].b64_json), np.asarray(source, dtype=np.float64)
    inside = np.zeros((64, 64), dtype=bool)
    inside[16:48, 16:48] = True
    changed = np.abs(out - before).mean(axis=2)
    assert changed[inside].mean() > 10 * (changed[~inside].mean() + 0.1)
    assert changed[inside].mean() > 5  # the masked square was repainted


def test_several_images_edit_the_first(client):
    r = client.images.edit(model="z-image", image=[("a.png", png(source_image()), "image/png"),
                                                   ("b.png", png(source_image().rotate(90)), "image/png")],
                           prompt="merge them", size="64x64", extra_body={"steps": 1})
    assert picture(r.data[0].b64_json).size == (64, 64)


def test_streaming_sends_partial_images_then_the_finished_one(client):
    events = list(client.images.generate(model="z-image", prompt="a mountain", stream=True, partial_images=2,
                                         size="64x64", extra_body={"steps": 4, "seed": 2}))
    kinds = [e.type for e in events]
    assert kinds == ["image_generation.partial_image"] * 2 + ["image_generation.completed"]
    assert [e.partial_image_index for e in events[:2]] == [0, 1]
    assert all(picture(e.b64_json).size == (64, 64) for e in events)
    final = client.images.generate(model="z-image", prompt="a mountain", size="64x64", extra_body={"steps": 4, "seed": 2})
    assert np.array_equal(pixels(events[-1].b64_json), pixels(final.data[0].b64_json))


def test_streaming_an_edit(client):
    stream = client.images.edit(model="z-image", image=("in.png", png(source_image()), "image/png"), prompt="snow",
                                stream=True, partial_images=1, extra_body={"steps": 4})
    kinds = [e.type for e in stream]
    assert kinds[-1] == "image_edit.completed" and set(kinds[:-1]) <= {"image_edit.partial_image"}


def post(server, path: str, **kwargs) -> httpx.Response:
    return httpx.post(server.url + path, timeout=300, **kwargs)


@pytest.mark.parametrize("body, param", [
    ({"prompt": "x", "size": "100x100"}, "size"),  # not a multiple of 16
    ({"prompt": "x", "size": "4096x4096"}, "size"),
    ({"prompt": "x", "size": "big"}, "size"),
    ({"prompt": "x", "model": "scripted"}, "model"),  # a chat model named
    ({"prompt": ""}, "prompt"),
    ({}, "prompt"),
    ({"prompt": "x", "n": 11}, "n"),
    ({"prompt": "x", "output_format": "gif"}, "output_format"),
    ({"prompt": "x", "background": "transparent"}, "background"),
    ({"prompt": "x", "quality": "ultra"}, "quality"),
    ({"prompt": "x", "stream": True, "partial_images": 4}, "partial_images"),
    ({"prompt": "x", "strength": 0.5}, "strength"),  # edits only
])
def test_bad_generation_requests_are_400s_naming_the_field(server, body, param):
    error = openai_error(post(server, "/v1/images/generations", json=body), 400)
    assert error["param"] == param and error["type"] == "invalid_request_error"


def test_a_chat_model_named_says_it_does_not_generate_images(client):
    with pytest.raises(openai.BadRequestError) as err:
        client.images.generate(model="scripted", prompt="a cat", size="64x64")
    assert err.value.body["param"] == "model" and "does not generate images" in err.value.body["message"]
    with pytest.raises(openai.BadRequestError) as err:  # and the other way round
        client.chat.completions.create(model="z-image", messages=[{"role": "user", "content": "hi"}])
    assert err.value.body["param"] == "model" and "image-generation model" in err.value.body["message"]


def test_bad_edit_requests_are_400s_naming_the_field(server):
    image = png(source_image())
    not_image = {"image": ("in.png", b"this is not a picture", "image/png")}
    assert openai_error(post(server, "/v1/images/edits", data={"prompt": "x"}, files=not_image), 400)["param"] == "image"
    assert openai_error(post(server, "/v1/images/edits", files={"prompt": (None, "x")}), 400)["param"] == "image"
    no_alpha = {"image": ("in.png", image, "image/png"), "mask": ("m.png", image, "image/png")}
    assert openai_error(post(server, "/v1/images/edits", data={"prompt": "x"}, files=no_alpha), 400)["param"] == "mask"
    from PIL import Image

    small = png(Image.new("RGBA", (32, 32)))
    wrong_size = {"image": ("in.png", image, "image/png"), "mask": ("m.png", small, "image/png")}
    assert openai_error(post(server, "/v1/images/edits", data={"prompt": "x"}, files=wrong_size), 400)["param"] == "mask"
    one = {"image": ("in.png", image, "image/png")}
    assert openai_error(post(server, "/v1/images/edits", data={"prompt": "x", "n": "two"}, files=one), 400)["param"] == "n"
    assert openai_error(post(server, "/v1/images/edits", json={"prompt": "x"}), 400)["param"] == "images"
    urlencoded = post(server, "/v1/images/edits", data={"prompt": "x"})
    assert openai_error(urlencoded, 400)["message"].startswith("Unsupported Content-Type")


def test_an_edit_as_json_with_data_urls(server):
    from PIL import Image

    url = "data:image/png;base64," + base64.b64encode(png(source_image())).decode()
    mask = np.full((64, 64, 4), 255, dtype=np.uint8)
    mask[:, :32, 3] = 0
    mask_url = "data:image/png;base64," + base64.b64encode(png(Image.fromarray(mask, "RGBA"))).decode()
    r = post(server, "/v1/images/edits", json={"prompt": "x", "images": [{"image_url": url}], "mask": {"image_url": mask_url},
                                              "steps": 2, "seed": 1})
    assert r.status_code == 200, r.text
    out = pixels(r.json()["data"][0]["b64_json"])
    changed = np.abs(out - np.asarray(source_image(), dtype=np.float64)).mean(axis=2)
    assert changed[:, :32].mean() > 10 * (changed[:, 32:].mean() + 0.1)
    bad = post(server, "/v1/images/edits", json={"prompt": "x", "images": [{"image_url": "https://example.com/a.png"}]})
    assert openai_error(bad, 400)["param"] == "images[0].image_url"


def test_azure_routes(server):
    azure = openai.AzureOpenAI(azure_endpoint=server.url, api_key="unused", api_version="2025-04-01-preview", max_retries=0, timeout=300)
    r = azure.images.generate(model="z-image", prompt="a bird", size="64x64", extra_body={"steps": 1})
    assert picture(r.data[0].b64_json).size == (64, 64)
    e = azure.images.edit(model="z-image", image=("in.png", png(source_image()), "image/png"), prompt="a bird", extra_body={"steps": 1})
    assert picture(e.data[0].b64_json).size == (64, 64)
    v1 = openai.OpenAI(base_url=server.url + "/openai/v1", api_key="unused", max_retries=0, timeout=300)
    assert picture(v1.images.generate(prompt="a bird", size="64x64", extra_body={"steps": 1}).data[0].b64_json).size == (64, 64)
    r = post(server, "/openai/deployments/scripted/images/generations?api-version=2025-04-01-preview", json={"prompt": "x"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "model"


def test_the_model_list_shows_the_image_model_and_what_it_does(client):
    models = {m.id: m for m in client.models.list()}
    assert "z-image" in models and "scripted" in models
    listed = client.models.retrieve("z-image").model_dump()
    assert listed["kind"] == "image" and listed["capabilities"] == ["image"]
    assert models["scripted"].model_dump()["capabilities"] == ["chat"]


def test_the_other_listings_describe_the_image_model(server, client):
    client.images.generate(model="z-image", prompt="x", size="64x64", extra_body={"steps": 1})  # loaded now
    tags = httpx.get(server.url + "/api/tags").json()["models"]
    assert "z-image:latest" in [m["name"] for m in tags]
    show = httpx.post(server.url + "/api/show", json={"model": "z-image"})
    assert show.status_code == 200 and show.json()["details"]["family"] == "z-image"
    assert "z-image" in [m["name"].removesuffix(":latest") for m in httpx.get(server.url + "/api/ps").json()["models"]]
    ps = httpx.get(server.url + "/mlxcli/ps").json()
    assert any(m["name"] == "z-image" and m["kind"] == "image" for m in ps["models"]), ps

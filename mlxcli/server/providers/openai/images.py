"""OpenAI Images: ``POST /v1/images/generations`` (JSON) and ``POST /v1/images/edits`` (multipart/form-data:
``image`` or ``image[]`` files, an optional ``mask``; or JSON with ``images``/``mask`` as data: URLs), and
Azure's routes (azure.py).

Images come back as base64 (``b64_json``; ``response_format: "url"`` gets a ``data:`` URL, as this server
keeps no files) in ``output_format`` png, jpeg or webp. ``quality`` sets the number of denoising steps
relative to the model's default (low: half, high: twice); ``steps``, ``seed``, ``guidance``,
``negative_prompt`` and ``strength`` (edits: how far from the image, 0..1) are extensions. With
``stream``, ``partial_images`` (0 to 3) images in progress come before each finished one, as
``image_generation.partial_image`` / ``image_edit.partial_image`` events, then ``….completed``.
A mask's transparent pixels (alpha 0) are where an edit may change the image.
"""

from __future__ import annotations

import base64
import io
import logging
import time
from dataclasses import dataclass
from typing import Any, Iterator

import falcon

from mlxcli.core.errors import ClientClosedRequest, InvalidRequest, MlxcliError
from mlxcli.core.images import MAX_IMAGES, MAX_PARTIAL_IMAGES, MAX_STEPS, QUALITIES, GeneratedImages, ImageRequest, PartialImage
from mlxcli.core.request import MAX_IMAGES as MAX_INPUT_IMAGES
from mlxcli.core.request import ImageInput, now
from mlxcli.server import disconnect, images
from mlxcli.server.context import ServerContext
from mlxcli.server.framing import SSE, sse_event
from mlxcli.server.http import Form, read_form, read_json, send_json
from mlxcli.server.providers import common
from mlxcli.server.providers.base import Provider
from mlxcli.server.validate import Obj

log = logging.getLogger("mlxcli.server")

TASK = "image"
FORMATS = {"png": "PNG", "jpeg": "JPEG", "webp": "WEBP"}
MAX_PROMPT = 32000  # characters (OpenAI's limit)
MAX_SEED = 2**31 - 1
INT_FIELDS = ("n", "partial_images", "output_compression", "steps", "seed")
NUMBER_FIELDS = ("guidance", "strength")
KEEPALIVE_SECONDS = 10.0


@dataclass
class ImagesCall:
    request: ImageRequest
    output_format: str
    compression: int | None
    url: bool  # response_format "url": data: URLs
    stream: bool
    quality: str

    @property
    def events(self) -> str:
        return "image_edit" if self.request.edit else "image_generation"

    def size(self, width: int, height: int) -> str:
        return f"{width}x{height}"

    def encode(self, image: Any) -> str:
        out = io.BytesIO()
        kind = FORMATS[self.output_format]
        options = {"quality": self.compression if self.compression is not None else 100} if kind != "PNG" else {}
        image.save(out, format=kind, **options)
        return base64.b64encode(out.getvalue()).decode("ascii")

    def response(self, result: GeneratedImages) -> dict[str, Any]:
        encoded = [self.encode(image) for image in result.images]
        data = [{"url": f"data:image/{self.output_format};base64,{b}"} if self.url else {"b64_json": b} for b in encoded]
        return {"created": now(), "data": data, "background": "opaque", "output_format": self.output_format,
                "size": self.size(result.width, result.height), **self._quality()}

    def partial_event(self, partial: PartialImage) -> bytes:
        width, height = partial.image.size
        return sse_event(f"{self.events}.partial_image", {
            "type": f"{self.events}.partial_image", "b64_json": self.encode(partial.image),
            "partial_image_index": partial.partial_index, "created_at": now(), "size": self.size(width, height),
            "quality": self.quality, "background": "opaque", "output_format": self.output_format,
        })

    def completed_events(self, result: GeneratedImages) -> Iterator[bytes]:
        for image in result.images:
            yield sse_event(f"{self.events}.completed", {
                "type": f"{self.events}.completed", "b64_json": self.encode(image), "created_at": now(),
                "size": self.size(result.width, result.height), "quality": self.quality, "background": "opaque",
                "output_format": self.output_format, "usage": USAGE,
            })

    def _quality(self) -> dict[str, str]:
        return {"quality": self.quality} if self.quality in ("low", "medium", "high") else {}


# This server counts no tokens for images; the streamed completed events carry OpenAI's usage object.
USAGE = {"input_tokens": 0, "output_tokens": 0, "total_tokens": 0, "input_tokens_details": {"text_tokens": 0, "image_tokens": 0}}


def parse_generation(body: dict[str, Any]) -> ImagesCall:
    """A JSON generations body; raises InvalidRequest naming the field."""
    return _call(Obj(body), [], None)


def parse_edit(form: Form) -> ImagesCall:
    """A multipart edits body: its fields, ``image``/``image[]`` files and an optional ``mask`` file."""
    body = {key: _typed(key, values) for key, values in form.fields.items()}
    files = [(raw, name) for name in ("image", "image[]") for raw in form.files.get(name, [])]
    if not files:
        raise InvalidRequest("Missing required parameter: 'image' (a file).", param="image", code="missing_required_parameter")
    masks = form.files.get("mask", [])
    return _edit(Obj(body), files, (masks[0], "mask") if masks else None)


def parse_edit_json(body: dict[str, Any]) -> ImagesCall:
    """A JSON edits body: ``images`` as ``[{"image_url": "data:..."}]``, ``mask`` as ``{"image_url": ...}``."""
    o = Obj(body)
    files = [(_data_url(Obj(item, param), "image_url"), f"{param}.image_url")
             for item, param in o.list("images", required=True, min_items=1)]
    mask = o.obj("mask")
    return _edit(o, files, (_data_url(mask, "image_url"), "mask.image_url") if mask is not None else None)


def _data_url(o: Obj, key: str) -> bytes:
    url = o.str(key, required=True)
    header, sep, payload = url.partition(",")
    if not url.startswith("data:") or not sep or not header.endswith(";base64"):
        raise InvalidRequest(f"'{o.param(key)}' must be a data: URL (data:image/png;base64,...): this server fetches no "
                             "image for an edit.", param=o.param(key))
    try:
        return base64.b64decode("".join(payload.split()), validate=True)
    except ValueError:
        raise InvalidRequest(f"Invalid base64 image data in '{o.param(key)}'.", param=o.param(key)) from None


def _edit(o: Obj, files: list[tuple[bytes, str]], mask: tuple[bytes, str] | None) -> ImagesCall:
    if len(files) > MAX_INPUT_IMAGES:
        raise InvalidRequest(f"The request holds {len(files)} images; the most is {MAX_INPUT_IMAGES}.", param=files[0][1])
    inputs = [images.decode(raw, name) for raw, name in files]
    return _call(o, inputs, _mask(mask[0], mask[1], files[0][0], inputs[0]) if mask is not None else None)


def _typed(key: str, values: list[str]) -> Any:
    """A form field as JSON would carry it (forms carry text): the last value, numbers and booleans read."""
    value = values[-1]
    try:
        if key in INT_FIELDS:
            return int(value)
        if key in NUMBER_FIELDS:
            return float(value)
    except ValueError:
        raise InvalidRequest(f"Invalid value for '{key}': expected a number, got {value!r}.", param=key, code="invalid_value") from None
    if key == "stream":
        if value.lower() not in ("true", "false"):
            raise InvalidRequest(f"Invalid value for 'stream': expected true or false, got {value!r}.", param=key)
        return value.lower() == "true"
    return value


def _call(o: Obj, inputs: list[ImageInput], mask: Any) -> ImagesCall:
    prompt = o.str("prompt", required=True, max_len=MAX_PROMPT)
    if not prompt.strip():
        raise InvalidRequest("'prompt' is empty: describe the image.", param="prompt")
    background = o.str("background", default="auto", choices=("auto", "opaque", "transparent"))
    if background == "transparent":
        raise InvalidRequest("'background': transparent images are not supported: the models here draw opaque images.",
                             param="background", code="unsupported_parameter")
    output_format = o.str("output_format", default="png", choices=tuple(FORMATS))
    stream = bool(o.bool("stream", default=False))
    quality = o.str("quality", default="auto", choices=QUALITIES + ("xhigh", "max"))
    o.str("response_format", choices=("b64_json", "url"))
    o.str("user", max_len=256)
    request = ImageRequest(
        prompt=prompt,
        model=common.model_name(o),
        n=o.int("n", lo=1, hi=MAX_IMAGES, default=1),
        size=_size(o.str("size", default="auto", max_len=32)),
        quality="high" if quality in ("xhigh", "max") else quality,
        steps=o.int("steps", lo=1, hi=MAX_STEPS),
        seed=o.int("seed", lo=0, hi=MAX_SEED),
        guidance=o.num("guidance", lo=0, hi=100),
        negative_prompt=o.str("negative_prompt", max_len=MAX_PROMPT),
        images=inputs,
        mask=mask,
        strength=o.num("strength", lo=0, hi=1) if inputs else o.unsupported("strength", "applies to edits only"),
        partial_images=o.int("partial_images", lo=0, hi=MAX_PARTIAL_IMAGES, default=0) if stream else 0,
    )
    return ImagesCall(request, output_format, o.int("output_compression", lo=0, hi=100), o.raw("response_format") == "url",
                      stream, quality)


def _size(text: str) -> tuple[int, int] | None:
    if text == "auto":
        return None
    width, sep, height = text.lower().partition("x")
    if not sep or not width.isdigit() or not height.isdigit():
        raise InvalidRequest(f"Invalid value for 'size': expected WIDTHxHEIGHT (e.g. 1024x1024) or auto, got {text!r}.",
                             param="size", code="invalid_value")
    return int(width), int(height)


def _mask(raw: bytes, param: str, image_raw: bytes, image: ImageInput) -> Any:
    """The mask as a PIL "L" image the size of the (decoded) image: 255 where its alpha is 0 (to change)."""
    from PIL import Image, ImageOps

    try:
        with Image.open(io.BytesIO(raw)) as img, Image.open(io.BytesIO(image_raw)) as original:
            if img.size != original.size:
                raise InvalidRequest(f"'{param}' is {img.width}x{img.height}; it must be the size of the image "
                                     f"({original.width}x{original.height}).", param=param)
            if "A" not in img.getbands() and "transparency" not in img.info:
                raise InvalidRequest(f"'{param}' has no alpha channel: its transparent pixels mark where the image may change.",
                                     param=param)
            alpha = img.convert("RGBA").getchannel("A")
    except InvalidRequest:
        raise
    except (OSError, ValueError, Image.DecompressionBombError, SyntaxError):
        raise InvalidRequest(f"The data in '{param}' is not an image Pillow can read (send a PNG with transparency).",
                             param=param) from None
    return ImageOps.invert(alpha).resize((image.width, image.height), Image.Resampling.BILINEAR)


class ImageStream:
    """The body of a streamed image request: partial images as they come, then one completed event per image.
    An object, so that ``close()`` cancels the work even when the body is never iterated."""

    def __init__(self, call: ImagesCall, work: Any):
        self.call = call
        self.work = work
        self._frames = self._encode(disconnect.current.get())

    def _encode(self, disconnected: disconnect.Disconnected) -> Iterator[bytes]:
        quiet_since = time.monotonic()
        try:
            while True:
                if disconnected():
                    raise ClientClosedRequest("The client closed the connection.")
                result = self.work.result(timeout=disconnect.POLL_SECONDS)
                while (partial := self.work.partial()) is not None:
                    quiet_since = time.monotonic()
                    yield self.call.partial_event(partial)
                if result is not None:
                    yield from self.call.completed_events(result)
                    return
                if time.monotonic() - quiet_since >= KEEPALIVE_SECONDS:
                    quiet_since = time.monotonic()
                    yield SSE.keepalive
        except ClientClosedRequest:
            return
        except MlxcliError as err:
            yield sse_event("error", {"type": "error", "error": {"message": err.message, "type": "server_error",
                                                                  "param": err.param, "code": err.code}})

    def __iter__(self) -> "ImageStream":
        return self

    def __next__(self) -> bytes:
        return next(self._frames)

    def close(self) -> None:
        self._frames.close()
        self.work.cancel()


class Images:
    """POST an image request (``on_post``: generations, ``on_post_edit``: edits); a model named by the route (an
    Azure deployment) wins over the body's."""

    def __init__(self, ctx: ServerContext, provider: Provider):
        self.ctx = ctx
        self.provider = provider

    def on_post(self, req: falcon.Request, resp: falcon.Response, deployment: str | None = None) -> None:
        self._answer(req, resp, parse_generation(read_json(req, self.ctx.settings.max_body_bytes)), deployment)

    def on_post_edit(self, req: falcon.Request, resp: falcon.Response, deployment: str | None = None) -> None:
        limit = self.ctx.settings.max_body_bytes
        json_body = (req.content_type or "").split(";")[0].strip().lower() == "application/json"
        call = parse_edit_json(read_json(req, limit)) if json_body else parse_edit(read_form(req, limit))
        self._answer(req, resp, call, deployment)

    def _answer(self, req: falcon.Request, resp: falcon.Response, call: ImagesCall, deployment: str | None) -> None:
        req.context.api = self.provider.name  # for the access log
        request = call.request
        request.request_id = req.context.request_id
        request.model = deployment or request.model
        work = self.ctx.engine.work(TASK, request)
        if call.stream:
            resp.content_type = SSE.media_type
            for name, value in SSE.headers:
                resp.set_header(name, value)
            resp.stream = ImageStream(call, work)
            return
        send_json(resp, call.response(disconnect.result(work)))

"""Image parts → ``ImageInput``: decode, check and resize on the HTTP thread, so the engine thread only
runs the model.

An image arrives as base64 (a ``data:`` URI or a bare string with its media type) or as an ``http(s)``
URL. URLs are fetched only when the server allows it (``--allow-image-urls``): a server that fetches any
URL for anyone reaches whatever its own network reaches (SSRF). The fetcher refuses loopback, private,
link-local and other non-public addresses, follows no redirect to another host, and stops at a size and
a time limit. Every failure is a 400 naming the request field.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import contextvars
import hashlib
import io
import ipaddress
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator
from urllib.parse import urljoin, urlsplit

import httpx

from mlxcli.core.errors import InvalidRequest
from mlxcli.core.request import MAX_IMAGES, ImageInput

FORMATS = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp", "GIF": "image/gif"}
MAX_IMAGE_BYTES = 20 * 1024 * 1024  # encoded
MAX_SOURCE_PIXELS = 40_000_000  # decoded, before resizing: a larger image is refused (decompression bombs)
MAX_PIXELS = 1024 * 1024  # what the model sees at most: larger images are scaled down, keeping their shape
MAX_REDIRECTS = 3


@dataclass(frozen=True)
class FetchPolicy:
    """Whether and how ``http(s)`` image URLs are fetched (``ServerSettings.image_fetch``)."""

    allow: bool = False
    max_bytes: int = MAX_IMAGE_BYTES
    timeout: float = 10.0  # seconds for the whole fetch
    allow_private: bool = False  # tests only: lets a fetch reach a local HTTP server


_policy: contextvars.ContextVar[FetchPolicy] = contextvars.ContextVar("image_fetch", default=FetchPolicy())


@contextlib.contextmanager
def fetching(policy: FetchPolicy) -> Iterator[None]:
    """Parse a request under ``policy`` (the chat resource wraps each provider's ``parse`` in it)."""
    token = _policy.set(policy)
    try:
        yield
    finally:
        _policy.reset(token)


def from_url(url: str, param: str) -> ImageInput:
    """An image from a ``data:`` URI or an ``http(s)`` URL (OpenAI's ``image_url``, Anthropic's ``url`` source)."""
    if url.startswith("data:"):
        header, sep, payload = url.partition(",")
        if not sep or not header.endswith(";base64"):
            raise InvalidRequest(f"Invalid image data URI in '{param}': expected data:image/<format>;base64,<data>.", param=param)
        return from_base64(payload, param, header[5:].removesuffix(";base64"))
    scheme = urlsplit(url).scheme.lower()
    if scheme not in ("http", "https"):
        raise InvalidRequest(f"Invalid image URL in '{param}': expected a data: URI or an http(s) URL.", param=param)
    return decode(_fetch(url, param, _policy.get()), param)


def from_base64(data: str, param: str, media_type: str | None = None) -> ImageInput:
    if media_type and media_type.lower() not in FORMATS.values():
        raise InvalidRequest(f"Unsupported image format {media_type!r} in '{param}': send {', '.join(FORMATS.values())}.", param=param)
    if len(data) > MAX_IMAGE_BYTES * 4 // 3 + 4:
        raise InvalidRequest(f"The image in '{param}' is larger than {MAX_IMAGE_BYTES // 2**20} MiB.", param=param)
    try:
        raw = base64.b64decode("".join(data.split()), validate=True)
    except (binascii.Error, ValueError):
        raise InvalidRequest(f"Invalid base64 image data in '{param}'.", param=param) from None
    return decode(raw, param)


def decode(raw: bytes, param: str) -> ImageInput:
    """Bytes → an RGB image of at most ``MAX_PIXELS``, or a 400."""
    try:
        from PIL import Image
    except ImportError:
        raise InvalidRequest("This server cannot read images: install mlxcli's vision extra (pip install 'mlxcli[vision]').", param=param) from None
    try:
        with Image.open(io.BytesIO(raw)) as img:
            if img.format not in FORMATS:
                raise InvalidRequest(f"Unsupported image format {img.format} in '{param}': send {', '.join(FORMATS)}.", param=param)
            if img.width * img.height > MAX_SOURCE_PIXELS:
                raise InvalidRequest(
                    f"The image in '{param}' has {img.width}x{img.height} pixels, more than the limit of {MAX_SOURCE_PIXELS}.",
                    param=param,
                )
            img.seek(0)  # an animated GIF or WebP: its first frame
            rgb = img.convert("RGB")
    except InvalidRequest:
        raise
    except (OSError, ValueError, Image.DecompressionBombError, SyntaxError):  # what Pillow raises for bytes that are no image
        raise InvalidRequest(f"The data in '{param}' is not an image Pillow can read ({', '.join(FORMATS)}).", param=param) from None
    if rgb.width * rgb.height > MAX_PIXELS:
        scale = (MAX_PIXELS / (rgb.width * rgb.height)) ** 0.5
        rgb = rgb.resize((max(1, int(rgb.width * scale)), max(1, int(rgb.height * scale))), Image.Resampling.BICUBIC)
    digest = hashlib.sha256(f"{rgb.width}x{rgb.height}:".encode() + rgb.tobytes()).hexdigest()
    return ImageInput(image=rgb, digest=digest, width=rgb.width, height=rgb.height, param=param)


def read_file(path: Path) -> ImageInput:
    """An image file (``mlxcli chat --image``, ``/image``)."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise InvalidRequest(f"cannot read the image {path}: {exc.strerror or exc}", param="image") from None
    return decode(raw, "image")


def to_png(image: ImageInput) -> bytes:
    """Lossless, so the image read back has the same pixels and digest (the store, the HTTP clients)."""
    out = io.BytesIO()
    image.image.save(out, format="PNG")
    return out.getvalue()


def data_url(image: ImageInput) -> str:
    return "data:image/png;base64," + base64.b64encode(to_png(image)).decode()


def check_count(count: int, param: str = "messages") -> None:
    if count > MAX_IMAGES:
        raise InvalidRequest(f"The request has {count} images, more than the limit of {MAX_IMAGES}.", param=param)


# ---- fetching URLs ------------------------------------------------------------------------------


def _fetch(url: str, param: str, policy: FetchPolicy) -> bytes:
    if not policy.allow:
        raise InvalidRequest(
            f"Image URLs are not fetched by this server ('{param}'): send the image as a data: URI or base64, "
            "or start the server with --allow-image-urls.",
            param=param,
        )
    deadline = time.monotonic() + policy.timeout
    host = urlsplit(url).hostname
    with httpx.Client(follow_redirects=False, timeout=policy.timeout, trust_env=False) as client:
        for _ in range(MAX_REDIRECTS + 1):
            pinned, headers, extensions = _pinned(url, _check_host(url, param, policy))
            try:
                with client.stream("GET", pinned, headers=headers, extensions=extensions) as response:
                    if response.is_redirect:
                        url = urljoin(url, response.headers.get("location", ""))
                        if urlsplit(url).hostname != host or urlsplit(url).scheme not in ("http", "https"):
                            raise InvalidRequest(f"The image URL in '{param}' redirects to another host, which is not followed.", param=param)
                        continue
                    if response.status_code != 200:
                        raise InvalidRequest(f"Fetching the image URL in '{param}' failed: HTTP {response.status_code}.", param=param)
                    return _read(response, param, policy, deadline)
            except httpx.HTTPError as exc:
                raise InvalidRequest(f"Fetching the image URL in '{param}' failed: {type(exc).__name__}.", param=param) from None
    raise InvalidRequest(f"The image URL in '{param}' redirects more than {MAX_REDIRECTS} times.", param=param)


def _read(response: httpx.Response, param: str, policy: FetchPolicy, deadline: float) -> bytes:
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > policy.max_bytes:
        raise InvalidRequest(f"The image at the URL in '{param}' is larger than {policy.max_bytes} bytes.", param=param)
    body = bytearray()
    for chunk in response.iter_bytes():
        body += chunk
        if len(body) > policy.max_bytes:
            raise InvalidRequest(f"The image at the URL in '{param}' is larger than {policy.max_bytes} bytes.", param=param)
        if time.monotonic() > deadline:
            raise InvalidRequest(f"Fetching the image URL in '{param}' took longer than {policy.timeout:g}s.", param=param)
    return bytes(body)


def _pinned(url: str, address: str) -> tuple[str, dict[str, str], dict[str, str]]:
    """The request for ``url`` sent to the vetted ``address`` itself, so that a second DNS answer (a rebinding
    attack) cannot send it elsewhere: the host goes in ``Host`` and, for https, in SNI and certificate checks."""
    parts = urlsplit(url)
    ip = f"[{address}]" if ":" in address else address
    netloc = ip + (f":{parts.port}" if parts.port else "")
    headers = {"Accept": "image/*", "Host": parts.netloc.rpartition("@")[2]}
    extensions = {"sni_hostname": parts.hostname} if parts.scheme == "https" else {}
    return parts._replace(netloc=netloc).geturl(), headers, extensions


def _check_host(url: str, param: str, policy: FetchPolicy) -> str:
    """The address to fetch ``url`` from; refuses a host that resolves to any address that is not public
    (unless ``allow_private``)."""
    parts = urlsplit(url)
    if not parts.hostname:
        raise InvalidRequest(f"Invalid image URL in '{param}'.", param=param)
    try:
        infos = socket.getaddrinfo(parts.hostname, parts.port or (443 if parts.scheme == "https" else 80), type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise InvalidRequest(f"The host of the image URL in '{param}' does not resolve.", param=param) from None
    for info in infos:
        address = ipaddress.ip_address(info[4][0].split("%")[0])
        if not address.is_global and not policy.allow_private:
            raise InvalidRequest(
                f"The image URL in '{param}' points at a non-public address ({address}), which this server does not fetch.",
                param=param,
            )
    return infos[0][4][0].split("%")[0]

"""Reading JSON bodies (and multipart forms) and writing JSON responses (orjson), with clear errors."""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Any

import falcon
import falcon.media
import orjson

from mlxcli.core.errors import InvalidRequest, PayloadTooLarge

JSON_TYPES = ("application/json",)
# No request needs deeper JSON (tool schemas are a few levels); deeper input only costs
# recursion in every later walk (templates, schema conversion).
MAX_JSON_DEPTH = 64
BOM = b"\xef\xbb\xbf"


def read_json(req: falcon.Request, max_bytes: int, *, any_type: bool = False) -> dict[str, Any]:
    """The request body as a JSON object, or an InvalidRequest/PayloadTooLarge naming the problem.

    ``any_type``: whatever the Content-Type says, for APIs whose clients send JSON without saying so
    (``curl -d`` says form-urlencoded). Browsers' cross-origin requests are refused by Origin first.
    """
    content_type = (req.content_type or "").split(";")[0].strip().lower()
    if not any_type and content_type and content_type not in JSON_TYPES and not content_type.endswith("+json"):
        raise InvalidRequest(
            f"Unsupported Content-Type {content_type!r}: send the body as application/json.", param=None
        )
    raw = _read_bounded(req, max_bytes)
    raw = raw.removeprefix(BOM)  # some Windows tools write one
    if not raw.strip():
        raise InvalidRequest("The request body is empty: send a JSON object.")
    try:
        body = orjson.loads(raw)  # refuses invalid UTF-8, lone surrogates, NaN and Infinity
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"The request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    if json_depth(body, MAX_JSON_DEPTH) > MAX_JSON_DEPTH:
        raise InvalidRequest(f"The request body is nested too deeply (more than {MAX_JSON_DEPTH} levels).")
    return body


def json_depth(value: Any, limit: int) -> int:
    """Nesting depth of a parsed JSON value (a scalar is 0), counting no further than ``limit + 1``."""
    deepest = 0
    stack = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        depth += 1
        deepest = max(deepest, depth)
        if deepest > limit:
            return deepest
        stack.extend((child, depth) for child in children)
    return deepest


def send_json(resp: falcon.Response, body: Any, status: int = 200) -> None:
    resp.status = status
    resp.content_type = falcon.MEDIA_JSON
    resp.data = orjson.dumps(body)


@dataclass
class Form:
    """A multipart/form-data body: its text fields and its files (bytes), each by field name, in order."""

    fields: dict[str, list[str]] = field(default_factory=dict)
    files: dict[str, list[bytes]] = field(default_factory=dict)


def read_form(req: falcon.Request, max_bytes: int) -> Form:
    """A multipart/form-data body (file uploads: OpenAI's image edits), or an InvalidRequest/PayloadTooLarge."""
    content_type = (req.content_type or "").split(";")[0].strip().lower()
    if content_type != "multipart/form-data":
        raise InvalidRequest(f"Unsupported Content-Type {content_type or 'none'!r}: send the body as multipart/form-data.")
    raw = _read_bounded(req, max_bytes)
    handler = falcon.media.MultipartFormHandler()
    handler.parse_options.max_body_part_buffer_size = max_bytes  # the body limit bounds every part
    form = Form()
    try:
        for part in handler.deserialize(io.BytesIO(raw), req.content_type, len(raw)):
            if part.filename is not None:
                form.files.setdefault(part.name, []).append(part.get_data())
            else:
                form.fields.setdefault(part.name, []).append(part.get_text() or "")
    except (falcon.MediaMalformedError, falcon.HTTPError, UnicodeDecodeError, ValueError) as exc:
        raise InvalidRequest(f"The multipart/form-data body cannot be read: {getattr(exc, 'description', None) or exc}") from None
    return form


def _read_bounded(req: falcon.Request, max_bytes: int) -> bytes:
    """The request's body, refused (413) once it is over ``max_bytes``, whatever Content-Length claims."""
    length = req.content_length
    if length is not None and length > max_bytes:
        raise PayloadTooLarge(f"Request body of {length} bytes exceeds the limit of {max_bytes} bytes.")
    raw = req.bounded_stream.read(max_bytes + 1)
    if len(raw) > max_bytes:
        raise PayloadTooLarge(f"Request body exceeds the limit of {max_bytes} bytes.")
    return raw

"""Reading a ``multipart/form-data`` body (file uploads) bounded: Falcon's streaming parser, every part
read in chunks against one budget for the whole body, text fields against a small one each.

A field may repeat (``include[]``): each name maps to the list of its values, in order.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import falcon
from falcon.media.multipart import MultipartFormHandler, MultipartParseOptions

from mlxcli.core.errors import InvalidRequest, PayloadTooLarge

MAX_FIELD_BYTES = 64 * 1024  # a text field (a prompt is a few hundred tokens)
MAX_PARTS = 64
CHUNK = 1 << 16


@dataclass
class Form:
    files: dict[str, tuple[str | None, bytes]] = field(default_factory=dict)  # name → (filename, content)
    fields: dict[str, list[str]] = field(default_factory=dict)

    def text(self, name: str) -> str | None:
        """The field's last value (a client that repeats a single field means the last)."""
        values = self.fields.get(name)
        return values[-1] if values else None


def read_form(req: falcon.Request, max_bytes: int, file_fields: tuple[str, ...]) -> Form:
    """The form; ``file_fields`` are read as bytes (whether or not the client named a file), the rest as
    UTF-8 text. Raises PayloadTooLarge past ``max_bytes``, InvalidRequest for anything malformed."""
    content_type = req.content_type or ""
    if content_type.split(";")[0].strip().lower() != "multipart/form-data":
        raise InvalidRequest(f"Unsupported Content-Type {content_type.split(';')[0]!r}: send the request as "
                             "multipart/form-data, with the audio as the 'file' field.")
    if req.content_length is not None and req.content_length > max_bytes:  # the upload, surely: name it
        raise PayloadTooLarge(f"Request body of {req.content_length} bytes exceeds the limit of {max_bytes} bytes.",
                              param=file_fields[0] if file_fields else None)
    options = MultipartParseOptions()
    options.max_body_part_count = MAX_PARTS
    form, budget = Form(), max_bytes
    try:
        parts = MultipartFormHandler(options).deserialize(req.bounded_stream, content_type, req.content_length)
        for part in parts:
            name = part.name or ""
            limit = budget if name in file_fields else min(budget, MAX_FIELD_BYTES)
            data = _read(part.stream, limit)
            if len(data) > limit:
                if name in file_fields or limit == budget:
                    raise PayloadTooLarge(f"Request body exceeds the limit of {max_bytes} bytes.", param=name or None)
                raise InvalidRequest(f"'{name}' is longer than {MAX_FIELD_BYTES} bytes.", param=name)
            budget -= len(data)
            if name in file_fields:
                form.files[name] = (part.filename, data)
            else:
                try:
                    form.fields.setdefault(name, []).append(data.decode("utf-8"))
                except UnicodeDecodeError:
                    raise InvalidRequest(f"'{name}' is not UTF-8 text.", param=name) from None
    except falcon.MediaMalformedError as exc:
        raise InvalidRequest(f"The multipart body is malformed: {exc.description or exc.title}") from None
    return form


def _read(stream, limit: int) -> bytes:
    """At most ``limit + 1`` bytes of ``stream`` (one more says it is over the limit)."""
    chunks, size = [], 0
    while size <= limit and (chunk := stream.read(min(CHUNK, limit + 1 - size))):
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)

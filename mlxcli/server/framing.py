"""How a streamed answer is framed on the wire: SSE (OpenAI, Anthropic) or NDJSON (one JSON object a line).

Every streamed byte goes through these helpers; a provider picks its ``Framing`` (media type,
headers, and what to write while nothing else is written, to keep proxies and clients waiting).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

NO_BUFFERING = (("Cache-Control", "no-cache"), ("X-Accel-Buffering", "no"))


@dataclass(frozen=True)
class Framing:
    media_type: str
    headers: tuple[tuple[str, str], ...] = NO_BUFFERING
    keepalive: bytes | None = None  # written while nothing else is; None: nothing (the client is still watched)


SSE = Framing("text/event-stream", keepalive=b": keep-alive\n\n")
NDJSON = Framing("application/x-ndjson")


def sse_data(payload: Any) -> bytes:
    return b"data: " + orjson.dumps(payload) + b"\n\n"


def sse_event(name: str, payload: Any) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"


def ndjson_line(payload: Any) -> bytes:
    return orjson.dumps(payload) + b"\n"

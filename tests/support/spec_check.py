"""Every answer a test server sends, checked against the official SDKs' own models.

A Falcon middleware for test servers: successful Chat Completions, Responses and Anthropic Messages
bodies (JSON, and each event of a stream) must validate as ``ChatCompletion``/``ChatCompletionChunk``, ``Completion``,
``Response``/``ResponseStreamEvent``, ``Message``/``RawMessageStreamEvent`` and ``ImagesResponse``/its stream events. What fails is kept in
``problems``; the test server raises them when it closes, so the test that caused them fails.
"""

from __future__ import annotations

import re
import threading
from typing import Any, Callable, Iterator, List, Literal, Optional

import anthropic.types
import falcon
import openai.types.chat
import openai.types.responses
import orjson
from pydantic import TypeAdapter, ValidationError

RESPONSE = TypeAdapter(openai.types.responses.Response)
RESPONSE_EVENT = TypeAdapter(openai.types.responses.ResponseStreamEvent)
COMPLETION = TypeAdapter(openai.types.chat.ChatCompletion)
LEGACY = TypeAdapter(openai.types.Completion)


class _LegacyChunkChoice(openai.types.CompletionChoice):
    finish_reason: Optional[Literal["stop", "length", "content_filter"]] = None  # null until the last chunk, as OpenAI streams it


class _LegacyChunk(openai.types.Completion):
    choices: List[_LegacyChunkChoice]


LEGACY_CHUNK = TypeAdapter(_LegacyChunk)  # the SDK has no chunk model of its own: Completion, with finish_reason null
CHUNK = TypeAdapter(openai.types.chat.ChatCompletionChunk)
IMAGES = TypeAdapter(openai.types.ImagesResponse)
IMAGE_GEN_EVENT = TypeAdapter(openai.types.ImageGenStreamEvent)
IMAGE_EDIT_EVENT = TypeAdapter(openai.types.ImageEditStreamEvent)
MESSAGE = TypeAdapter(anthropic.types.Message)
MESSAGE_EVENT = TypeAdapter(anthropic.types.RawMessageStreamEvent)

# (method, path) → (the model of a JSON answer, the model of each stream event)
ROUTES: list[tuple[str, re.Pattern, TypeAdapter, TypeAdapter | None]] = [
    ("POST", re.compile(r".*/chat/completions"), COMPLETION, CHUNK),
    ("POST", re.compile(r".*/v1/completions"), LEGACY, LEGACY_CHUNK),
    ("POST", re.compile(r".*/responses"), RESPONSE, RESPONSE_EVENT),
    ("GET", re.compile(r".*/responses/[^/]+"), RESPONSE, None),
    ("POST", re.compile(r".*/v1/messages"), MESSAGE, MESSAGE_EVENT),
    ("POST", re.compile(r".*/images/generations"), IMAGES, IMAGE_GEN_EVENT),
    ("POST", re.compile(r".*/images/edits"), IMAGES, IMAGE_EDIT_EVENT),
]


class SpecCheck:
    def __init__(self) -> None:
        self.problems: list[str] = []
        self._lock = threading.Lock()

    def _check(self, model: TypeAdapter, payload: Any, where: str) -> None:
        try:
            model.validate_python(payload)
        except ValidationError as exc:
            with self._lock:
                self.problems.append(f"{where}: {exc}\n{orjson.dumps(payload)[:2000]!r}")

    def process_response(self, req: falcon.Request, resp: falcon.Response, resource, req_succeeded: bool) -> None:
        path = req.context.get("path", req.path)
        route = next(((body, event) for method, pattern, body, event in ROUTES if method == req.method and pattern.fullmatch(path)), None)
        if route is None or not str(resp.status).startswith("200"):
            return
        body_model, event_model = route
        if resp.stream is not None and event_model is not None:
            resp.stream = _Tee(resp.stream, lambda payload: self._check(event_model, payload, f"{req.method} {path} event"))
        elif resp.data:
            self._check(body_model, orjson.loads(resp.data), f"{req.method} {path}")


SKIPPED = ("ping", "error")  # Anthropic's keep-alive event, and error events: shapes of their own


class _Tee:
    """A streamed body passed through unchanged; each SSE event's JSON also goes to ``check``."""

    def __init__(self, body, check: Callable[[Any], None]):
        self._body = body
        self._frames: Iterator[bytes] = iter(body)
        self._check = check
        self._pending = b""

    def __iter__(self) -> "_Tee":
        return self

    def __next__(self) -> bytes:
        frame = next(self._frames)
        self._pending += frame
        while b"\n\n" in self._pending:
            event, self._pending = self._pending.split(b"\n\n", 1)
            data = [line[6:] for line in event.split(b"\n") if line.startswith(b"data: ")]
            if data and data != [b"[DONE]"]:
                payload = orjson.loads(b"\n".join(data))
                if not (isinstance(payload, dict) and payload.get("type") in SKIPPED or "error" in payload and payload.get("type") is None):
                    self._check(payload)
        return frame

    def close(self) -> None:
        close = getattr(self._body, "close", None)
        if close is not None:
            close()

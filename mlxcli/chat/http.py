"""The chat backend for a running server (`mlxcli chat --url`): the HTTP client, one API, one model.

Speaks OpenAI Chat Completions (mlxcli serve, llama.cpp, LM Studio, Ollama, vLLM, OpenAI itself),
the OpenAI Responses API, Anthropic Messages or Ollama's own API (see ``mlxcli.client``).
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Iterator

import httpx

from mlxcli.client import BadResponse, Client, EventStream, ServerError
from mlxcli.core.events import Event, Usage
from mlxcli.core.request import ChatRequest

IMAGES_PATH = "/v1/images/generations"


class HttpBackend:
    def __init__(
        self,
        url: str,
        *,
        api: str = "chat",
        model: str | None = None,
        api_key: str | None = None,
        transport: httpx.BaseTransport | None = None,
        speech_model: str | None = None,
    ):
        self._client = Client(url, api=api, api_key=api_key, transport=transport)
        self.speech_model = speech_model  # for /audio: None, the server's own first
        self.where = self._client.endpoint
        try:
            self.model = self._pick(model)
        except ServerError:
            self._client.close()
            raise

    def _pick(self, model: str | None) -> str:
        """Fail now if the server is unreachable or wants a key; the model to ask for (by default
        the server's first listed model: its default, for mlxcli serve)."""
        root = self._client.root
        try:
            listed = self._client.models()
        except ServerError as exc:
            if exc.http_status in (401, 403) or (exc.http_status is None and not isinstance(exc, BadResponse)):
                raise
            if model is None:
                raise ServerError(f"cannot list the models of {root} ({exc.message}); name one with --model") from None
            return model  # a server without /v1/models: the named model is all we need
        if model is not None:
            return model
        if not listed:
            raise ServerError(f"{root}/v1/models lists no model; name one with --model")
        return listed[0]

    def stream(self, request: ChatRequest) -> "HttpReply":
        return HttpReply(self._client.stream(request, model=self.model))

    def image(self, prompt: str, size: tuple[int, int] | None = None) -> bytes:
        """Asks ``/v1/images/generations`` with no model: a server with one image model uses it."""
        body = {"prompt": prompt, "response_format": "b64_json", **({"size": f"{size[0]}x{size[1]}"} if size else {})}
        answer = self._client.post_json(IMAGES_PATH, body)
        try:
            return base64.b64decode(answer["data"][0]["b64_json"], validate=True)
        except (KeyError, IndexError, TypeError, ValueError):
            raise BadResponse(f"{self._client.root}{IMAGES_PATH} did not answer an image") from None

    def transcribe(self, path: Path) -> str:
        """The server's transcription of ``path`` (its speech model, or ``speech_model``)."""
        try:
            audio = path.read_bytes()
        except OSError as exc:
            raise ServerError(f"cannot read {path}: {exc.strerror or exc}") from None
        fields = {"response_format": "text", **({"model": self.speech_model} if self.speech_model else {})}
        return self._client.transcribe("/v1/audio/transcriptions", audio, path.name, fields).decode("utf-8", "replace").strip()

    def close(self) -> None:
        self._client.close()


class HttpReply:
    def __init__(self, events: EventStream):
        self._events = events

    def __iter__(self) -> Iterator[Event]:
        return iter(self._events)

    def cancel(self) -> Usage:
        self._events.close()  # closes the connection: the server stops generating
        return Usage()  # servers report usage only at the end

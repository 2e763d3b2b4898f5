"""The HTTP client: one server, one API; list models, GET JSON, stream a ChatRequest as neutral events."""

from __future__ import annotations

import time
from typing import Any, Iterator

import httpx
import orjson

from mlxcli.client.apis import Reader, api as api_module
from mlxcli.client.errors import BadResponse, ServerError, ServerUnreachable, refusal
from mlxcli.client.streams import FRAMINGS
from mlxcli.client.urls import MODELS_PATH, server_root
from mlxcli.core.events import Event, Finish, ReasoningDelta, TextDelta, Timings, ToolCallDelta
from mlxcli.core.request import ChatRequest

# Generous: a server may prefill a long prompt on a CPU for minutes without sending a byte.
DEFAULT_TIMEOUT = 600.0
CONNECT_TIMEOUT = 10.0


class Client:
    """A server at ``url`` (any form :func:`server_root` takes) speaking ``api`` (chat, responses, anthropic, ollama).

    Thread-safe: several threads may stream at once (up to ``connections`` connections).
    """

    def __init__(
        self,
        url: str,
        *,
        api: str = "chat",
        api_key: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        connections: int = 16,
        transport: httpx.BaseTransport | None = None,
    ):
        self.api = api_module(api)
        self.root = server_root(url)
        self.endpoint = self.root + self.api.PATH
        self._http = httpx.Client(
            headers=self.api.headers(api_key),
            timeout=httpx.Timeout(timeout, connect=CONNECT_TIMEOUT),
            limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
            transport=transport,
        )

    def _send(self, request: httpx.Request, *, stream: bool = False) -> httpx.Response:
        """The response to ``request`` when it is a 200; every failure a ServerError."""
        try:
            response = self._http.send(request, stream=stream)
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise ServerUnreachable(self.root, str(exc) or type(exc).__name__) from None
        except httpx.TimeoutException:
            raise ServerError(f"{self.root} did not answer in time") from None
        except httpx.HTTPError as exc:
            raise ServerError(f"the connection to {self.root} broke: {exc or type(exc).__name__}") from None
        if response.status_code != 200:
            content = b""
            try:
                content = response.read()
            except httpx.HTTPError:
                pass  # the status says enough
            finally:
                response.close()
            raise refusal(response.status_code, content, response.headers)
        return response

    def get_json(self, path: str) -> Any:
        """``GET root + path`` as JSON (``/v1/models``, ``/mlxcli/ps``)."""
        response = self._send(self._http.build_request("GET", self.root + path, headers={"Accept": "application/json"}))
        try:
            return orjson.loads(response.content)
        except orjson.JSONDecodeError:
            raise BadResponse(f"{self.root}{path} did not answer JSON") from None

    def post_json(self, path: str, body: Any) -> Any:
        """``POST root + path`` with a JSON body (``/v1/embeddings``); the answer as JSON."""
        request = self._http.build_request(
            "POST", self.root + path, content=orjson.dumps(body), headers={"Content-Type": "application/json"}
        )
        try:
            return orjson.loads(self._send(request).content)
        except orjson.JSONDecodeError:
            raise BadResponse(f"{self.root}{path} did not answer JSON") from None

    def transcribe(self, path: str, audio: bytes, filename: str, fields: dict[str, str | list[str]]) -> bytes:
        """``POST root + path`` (``/v1/audio/transcriptions`` or ``/translations``): the audio as a multipart
        upload with ``fields``; the answer's body."""
        request = self._http.build_request("POST", self.root + path, data=fields, files={"file": (filename, audio)})
        return self._send(request).content

    def models(self) -> list[str]:
        """The ids ``GET /v1/models`` lists, in its order (mlxcli serve lists its default model first)."""
        listing = self.get_json(MODELS_PATH)
        try:
            return [str(m["id"]) for m in listing["data"]]
        except (KeyError, TypeError):
            raise BadResponse(f"{self.root}{MODELS_PATH} is not a model list") from None

    def stream(self, request: ChatRequest, *, model: str) -> "EventStream":
        """Send ``request`` (asking for ``model``); a refusal raises here, a failure half-way from the iteration."""
        body = self.api.body(request, model)
        started = time.perf_counter()
        http_request = self._http.build_request(
            "POST", self.endpoint, content=orjson.dumps(body),
            headers={"Content-Type": "application/json", "Accept": "text/event-stream"},
        )
        return EventStream(self._send(http_request, stream=True), self.api.Reader(), self.api.FRAMING, started, self.root)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class EventStream:
    """The neutral events of one streamed answer, ending with one Finish (timed as the client saw it).

    ``close()`` (or leaving the ``with`` block) closes the connection, which stops a server such as
    `mlxcli serve` generating; ``usage_reported`` tells whether the server gave its token counts
    (otherwise the Finish's usage is zeros).
    """

    def __init__(self, response: httpx.Response, reader: Reader, framing: str, started: float, where: str):
        self._response = response
        self._reader = reader
        self._frames = FRAMINGS[framing]
        self._where = where
        self.started = started
        self._events = self._read()

    @property
    def usage_reported(self) -> bool:
        return self._reader.usage_reported

    def __iter__(self) -> Iterator[Event]:
        return self._events

    def _read(self) -> Iterator[Event]:
        first = last = None
        try:
            for name, data in self._frames(self._response.iter_lines()):
                events = list(self._reader.feed(name, data))
                if self._reader.done:
                    break
                for event in events:
                    last = time.perf_counter()
                    first = first or last
                    yield event
            else:
                events = list(self._reader.end())
        except httpx.TimeoutException:
            raise ServerError(f"{self._where} did not answer in time") from None
        except httpx.HTTPError as exc:
            raise ServerError(f"the connection to {self._where} broke: {exc or type(exc).__name__}") from None
        finally:
            self._response.close()
        for event in events:
            if isinstance(event, (TextDelta, ReasoningDelta, ToolCallDelta)):
                last = time.perf_counter()
                first = first or last
            elif isinstance(event, Finish):
                ended = time.perf_counter()
                first = first or ended
                event.timings = Timings(prefill=first - self.started, decode=(last or ended) - first)
            yield event

    def close(self) -> None:
        self._events.close()
        self._response.close()

    def __enter__(self) -> "EventStream":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

"""Streaming HTTP clients for any server that speaks one of the three protocols.

Each protocol knows its path, how to write a request body and how to read its event stream
into a RequestResult (wire-formats §1.4, §2.3, §3.4). Output tokens come from the usage the
server reports; a server that reports none is measured by counting its chunks.
"""

from __future__ import annotations

import time
from typing import Any, Iterable, Iterator

import httpx
import orjson

from mlxcli.bench.targets import RequestResult
from mlxcli.core.request import ChatRequest

APIS = ("chat", "responses", "anthropic")


def root_url(url: str) -> str:
    """``http://host:port`` from what users paste: with or without ``/v1`` and trailing slashes."""
    url = url.strip().rstrip("/")
    if "://" not in url:
        url = "http://" + url
    return url.removesuffix("/v1")


def sse_events(lines: Iterable[str]) -> Iterator[tuple[str | None, str]]:
    """(event name, data) per server-sent event; comments and empty events are skipped."""
    name: str | None = None
    data: list[str] = []
    for line in lines:
        if not line:
            if data:
                yield name, "\n".join(data)
            name, data = None, []
        elif line.startswith(":"):
            continue
        elif line.startswith("event:"):
            name = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].removeprefix(" "))
    if data:
        yield name, "\n".join(data)


class StreamReader:
    """Reads one protocol's events into a result; ``done`` once the terminal event arrived."""

    def __init__(self, result: RequestResult):
        self.result = result
        self.done = False

    def feed(self, event: str | None, data: str) -> None:
        raise NotImplementedError

    def fail(self, message: Any) -> None:
        if self.result.error is None:
            self.result.error = str(message or "error event")
        self.done = True


# ---- OpenAI Chat Completions ------------------------------------------------


class ChatReader(StreamReader):
    def feed(self, event: str | None, data: str) -> None:
        if data == "[DONE]":
            self.done = True
            return
        chunk = orjson.loads(data)
        if chunk.get("error"):
            return self.fail(_message(chunk["error"]))
        usage = chunk.get("usage")
        if usage:
            self.result.usage_output_tokens = usage.get("completion_tokens")
            self.result.prompt_tokens = usage.get("prompt_tokens")
            self.result.cached_tokens = (usage.get("prompt_tokens_details") or {}).get("cached_tokens")
        for choice in chunk.get("choices") or []:
            delta = choice.get("delta") or {}
            piece = delta.get("content") or delta.get("reasoning_content") or delta.get("reasoning") or ""
            piece += "".join((c.get("function") or {}).get("arguments") or "" for c in delta.get("tool_calls") or [])
            if piece:
                self.result.output(piece)


def chat_body(request: ChatRequest, model: str) -> dict[str, Any]:
    return {
        "model": model,
        "messages": [{"role": m.role, "content": m.content or ""} for m in request.messages],
        "stream": True,
        "stream_options": {"include_usage": True},
        "max_tokens": request.sampling.max_tokens,
        "temperature": request.sampling.temperature,
    }


# ---- OpenAI Responses ---------------------------------------------------------

OUTPUT_DELTAS = (
    "response.output_text.delta",
    "response.reasoning_text.delta",
    "response.reasoning_summary_text.delta",
    "response.function_call_arguments.delta",
)


class ResponsesReader(StreamReader):
    def feed(self, event: str | None, data: str) -> None:
        payload = orjson.loads(data)
        kind = payload.get("type") or event
        if kind in OUTPUT_DELTAS:
            if payload.get("delta"):
                self.result.output(payload["delta"])
        elif kind in ("response.completed", "response.incomplete"):
            usage = (payload.get("response") or {}).get("usage") or {}
            if "output_tokens" in usage:
                self.result.usage_output_tokens = usage["output_tokens"]
                self.result.prompt_tokens = usage.get("input_tokens")
                self.result.cached_tokens = (usage.get("input_tokens_details") or {}).get("cached_tokens")
            self.done = True
        elif kind == "response.failed":
            self.fail(_message((payload.get("response") or {}).get("error")))
        elif kind == "error":
            self.fail(_message(payload))


def responses_body(request: ChatRequest, model: str) -> dict[str, Any]:
    return {
        "model": model,
        "input": [{"role": m.role, "content": m.content or ""} for m in request.messages],
        "stream": True,
        "store": False,
        "max_output_tokens": request.sampling.max_tokens,
        "temperature": request.sampling.temperature,
    }


# ---- Anthropic Messages ---------------------------------------------------------


class AnthropicReader(StreamReader):
    def feed(self, event: str | None, data: str) -> None:
        payload = orjson.loads(data)
        if event == "message_start":
            usage = (payload.get("message") or {}).get("usage") or {}
            self.result.prompt_tokens = usage.get("input_tokens")
            self.result.cached_tokens = usage.get("cache_read_input_tokens")
        elif event == "content_block_delta":
            delta = payload.get("delta") or {}
            piece = delta.get("text") or delta.get("thinking") or delta.get("partial_json") or ""
            if piece:
                self.result.output(piece)
        elif event == "message_delta":
            usage = payload.get("usage") or {}
            if "output_tokens" in usage:  # cumulative
                self.result.usage_output_tokens = usage["output_tokens"]
        elif event == "message_stop":
            self.done = True
        elif event == "error":
            self.fail(_message(payload.get("error")))


def anthropic_body(request: ChatRequest, model: str) -> dict[str, Any]:
    system = [m.content or "" for m in request.messages if m.role == "system"]
    body: dict[str, Any] = {
        "model": model,
        "max_tokens": request.sampling.max_tokens,
        "messages": [{"role": m.role, "content": m.content or ""} for m in request.messages if m.role != "system"],
        "stream": True,
        "temperature": request.sampling.temperature,
    }
    if system:
        body["system"] = "\n\n".join(system)
    return body


PROTOCOLS = {
    "chat": ("/v1/chat/completions", chat_body, ChatReader),
    "responses": ("/v1/responses", responses_body, ResponsesReader),
    "anthropic": ("/v1/messages", anthropic_body, AnthropicReader),
}


def _message(error: Any) -> str:
    if isinstance(error, dict):
        return str(error.get("message") or error.get("type") or error)
    return str(error or "error event")


def _http_error(response: httpx.Response) -> str:
    response.read()
    try:
        body = orjson.loads(response.content)
        detail = _message(body.get("error") or body) if isinstance(body, dict) else str(body)
    except orjson.JSONDecodeError:
        detail = response.text
    return f"HTTP {response.status_code}: {' '.join(detail.split())[:200]}"


class HttpTarget:
    """A server; ``run`` may be called from several threads at once (one connection each)."""

    kind = "http"

    def __init__(
        self,
        url: str,
        *,
        api: str = "chat",
        model: str | None = None,
        api_key: str | None = None,
        timeout: float = 600.0,
        connections: int = 16,
        name: str | None = None,
    ):
        if api not in PROTOCOLS:
            raise ValueError(f"unknown api {api!r}: choose from {', '.join(APIS)}")
        self.root = root_url(url)
        self.name = name or self.root.split("://", 1)[1]
        self.api = api
        self.path, self._body, self._reader = PROTOCOLS[api]
        headers = {"anthropic-version": "2023-06-01"} if api == "anthropic" else {}
        if api_key:
            headers.update({"Authorization": f"Bearer {api_key}", "x-api-key": api_key})
        self.client = httpx.Client(
            headers=headers,
            timeout=httpx.Timeout(timeout, connect=10.0),
            limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
        )
        try:
            self.model = model or self._served_model()
        except httpx.HTTPError:
            self.client.close()
            raise

    def _served_model(self) -> str:
        """The first model the server lists (most serve exactly one), else mlx_lm.server's name
        for the model it was started with. Raises httpx.ConnectError if nothing listens there."""
        try:
            response = self.client.get(self.root + "/v1/models", timeout=10)
            return str(response.json()["data"][0]["id"])
        except (httpx.ConnectError, httpx.ConnectTimeout):
            raise
        except (httpx.HTTPError, ValueError, KeyError, IndexError, TypeError):
            return "default_model"  # e.g. mlx_lm.server drops the connection when it has no HF cache

    def run(self, request: ChatRequest) -> RequestResult:
        result = RequestResult(started=time.perf_counter())
        reader = self._reader(result)
        try:
            with self.client.stream("POST", self.root + self.path, json=self._body(request, self.model)) as response:
                if response.status_code != 200:
                    result.error = _http_error(response)
                else:
                    for event, data in sse_events(response.iter_lines()):
                        if not reader.done:
                            reader.feed(event, data)
                    if not reader.done:
                        reader.fail("the stream ended before its final event")
        except httpx.HTTPError as exc:
            result.error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        except (orjson.JSONDecodeError, AttributeError, TypeError) as exc:
            result.error = f"malformed event: {exc}"
        result.ended = time.perf_counter()
        return result

    def describe(self) -> dict:
        return {"name": self.name, "kind": self.kind, "url": self.root, "api": self.api, "model": self.model}

    def close(self) -> None:
        self.client.close()

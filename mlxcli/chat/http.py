"""A backend for any OpenAI-compatible server: streaming `/v1/chat/completions` over httpx.

Works with `mlxcli serve` and with other servers (llama.cpp, LM Studio, Ollama,
vLLM, OpenAI itself). Reasoning arrives as ``delta.reasoning_content`` (mlxcli,
vLLM, llama.cpp) or ``delta.reasoning`` (Ollama, OpenRouter); both are read.
"""

from __future__ import annotations

import time
from typing import Any, Iterator
from urllib.parse import urlsplit

import httpx
import orjson

from mlxcli.core.errors import MlxcliError
from mlxcli.core.events import Event, Finish, ReasoningDelta, TextDelta, Timings, Usage
from mlxcli.core.request import ChatRequest, Message

# Generous: a server may prefill a long prompt on a CPU for minutes without sending a byte.
TIMEOUT = httpx.Timeout(connect=10.0, read=600.0, write=30.0, pool=10.0)
FINISH_REASONS = {"stop": "stop", "length": "length", "tool_calls": "tool_calls"}


class ServerError(MlxcliError):
    """The server refused the request, could not be reached, or broke off its answer."""

    def __init__(self, message: str, *, http_status: int | None = None):
        super().__init__(message)
        self.http_status = http_status  # the server's status, None when there was no answer


def base_url(url: str) -> str:
    """The OpenAI base URL: ``http://host:port`` gets ``/v1``; a URL with a path is taken as it is."""
    url = url.strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ServerError(f"{url!r} is not an http(s) URL (example: http://127.0.0.1:8000)")
    return url if parts.path else url + "/v1"


class HttpBackend:
    def __init__(self, url: str, *, model: str | None = None, api_key: str | None = None, transport=None):
        self.where = base_url(url)
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(timeout=TIMEOUT, headers=headers, transport=transport)
        self.model = self._check(model)

    def _check(self, model: str | None) -> str:
        """Fail now if the server is unreachable or wants a key; the model to ask for (by default
        the server's first listed model: its default, for mlxcli serve)."""
        try:
            response = self._send("GET", "/models")
        except ServerError as exc:
            if exc.http_status in (None, 401, 403):
                raise
            if model is None:
                raise ServerError(f"cannot list the models of {self.where} ({exc.message}); name one with --model") from None
            return model  # a server without /models: the named model is all we need
        if model is not None:
            return model
        try:
            return response.json()["data"][0]["id"]
        except (ValueError, KeyError, IndexError, TypeError):
            raise ServerError(f"{self.where}/models lists no model; name one with --model") from None

    def _send(self, method: str, path: str, body: dict[str, Any] | None = None, *, stream: bool = False) -> httpx.Response:
        request = self._client.build_request(
            method, self.where + path,
            content=orjson.dumps(body) if body is not None else None,
            headers={"Content-Type": "application/json"} if body is not None else None,
        )
        try:
            response = self._client.send(request, stream=stream)
        except httpx.TimeoutException:
            raise ServerError(f"{self.where} did not answer in time") from None
        except httpx.HTTPError as exc:
            raise ServerError(f"cannot reach {self.where}: {exc}") from None
        if response.status_code != 200:
            response.read()
            response.close()
            raise _refusal(response)
        return response

    def stream(self, request: ChatRequest) -> "HttpReply":
        started = time.perf_counter()
        response = self._send("POST", "/chat/completions", request_body(request, self.model), stream=True)
        return HttpReply(_events(response, started))

    def close(self) -> None:
        self._client.close()


class HttpReply:
    def __init__(self, events: Iterator[Event]):
        self._events = events

    def __iter__(self) -> Iterator[Event]:
        return self._events

    def cancel(self) -> Usage:
        self._events.close()  # closes the connection: the server stops generating
        return Usage()  # the server reports usage only at the end


def request_body(request: ChatRequest, model: str) -> dict[str, Any]:
    s = request.sampling
    body: dict[str, Any] = {
        "model": model,
        "messages": [_message(m) for m in request.messages],
        "stream": True,
        "stream_options": {"include_usage": True},
        "store": False,  # the client keeps the conversation
    }
    # Standard fields, then extensions most local servers accept (sent only when asked for).
    for name in ("temperature", "top_p", "seed", "presence_penalty", "frequency_penalty", "max_tokens",
                 "top_k", "min_p", "repetition_penalty"):
        value = getattr(s, name)
        if value is not None:
            body[name] = value
    if s.stop:
        body["stop"] = list(s.stop)
    return body


def _message(m: Message) -> dict[str, Any]:
    return {"role": m.role, "content": m.content or ""}


def _events(response: httpx.Response, started: float) -> Iterator[Event]:
    """SSE chunks → neutral events, ending with one Finish (client-side timings)."""
    reason, usage, first = None, None, None
    try:
        for line in response.iter_lines():
            if not line.startswith("data:"):
                continue  # blank separators, ": keep-alive" comments, "event:" names
            data = line[5:].strip()
            if data == "[DONE]":
                break
            try:
                chunk = orjson.loads(data)
            except orjson.JSONDecodeError:
                raise ServerError(f"the server sent something that is not JSON: {data[:200]!r}") from None
            if not isinstance(chunk, dict):
                continue
            if chunk.get("error"):
                raise ServerError(_error_message(chunk) or "the server reported an error")
            if isinstance(chunk.get("usage"), dict):
                usage = _usage(chunk["usage"])
            for choice in chunk.get("choices") or []:
                delta = choice.get("delta") or {}
                reasoning = delta.get("reasoning_content") or delta.get("reasoning")
                text = delta.get("content")
                if (reasoning or text) and first is None:
                    first = time.perf_counter()
                if isinstance(reasoning, str) and reasoning:
                    yield ReasoningDelta(reasoning)
                if isinstance(text, str) and text:
                    yield TextDelta(text)
                if choice.get("finish_reason"):
                    reason = FINISH_REASONS.get(choice["finish_reason"], "stop")
    except httpx.HTTPError as exc:
        raise ServerError(f"the connection to the server broke: {exc}") from None
    finally:
        response.close()
    if reason is None:
        raise ServerError("the server ended the stream before the answer was complete")
    ended = time.perf_counter()
    first = first or ended
    yield Finish(reason, usage or Usage(), Timings(prefill=first - started, decode=ended - first))


def _usage(u: dict[str, Any]) -> Usage:
    def count(value: Any) -> int:
        return value if isinstance(value, int) else 0

    return Usage(
        prompt_tokens=count(u.get("prompt_tokens")),
        completion_tokens=count(u.get("completion_tokens")),
        cached_tokens=count((u.get("prompt_tokens_details") or {}).get("cached_tokens")),
        reasoning_tokens=count((u.get("completion_tokens_details") or {}).get("reasoning_tokens")),
    )


def _refusal(response: httpx.Response) -> ServerError:
    try:
        message = _error_message(response.json())
    except ValueError:
        message = None
    message = message or response.text.strip()[:300] or response.reason_phrase
    hint = " (pass --api-key)" if response.status_code == 401 else ""
    return ServerError(f"the server answered {response.status_code}: {message}{hint}", http_status=response.status_code)


def _error_message(body: Any) -> str | None:
    """The message of an OpenAI, Anthropic-style or FastAPI error body."""
    if not isinstance(body, dict):
        return None
    error = body.get("error", body.get("detail"))
    if isinstance(error, dict):
        error = error.get("message")
    return error if isinstance(error, str) else None

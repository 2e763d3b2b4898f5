"""One request as the soak makes it: through an official SDK, or raw over httpx for a stream whose every event
is timed and checked. Outcomes the mix handles are exceptions: a refusal to retry (Overload), a connection the
server dropped (Lost), an answer that is not what its request asked for (Wrong)."""

from __future__ import annotations

import json
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterator

import anthropic
import httpx
import openai

from tests.support import anthropic_stream, ndjson, streams

PATHS = {"chat": "/v1/chat/completions", "responses": "/v1/responses", "anthropic": "/v1/messages", "ollama": "/api/chat",
         "azure": "/openai/deployments/scripted/chat/completions?api-version=2024-10-21", "embeddings": "/v1/embeddings"}
OVERLOAD = {"anthropic": 529}  # the others answer 503
TIMEOUT = httpx.Timeout(180, connect=10)  # a long conversation's prompt, read on a loaded machine


class Overload(Exception):
    """A refusal at once (503, Anthropic's 529) with Retry-After: retry after it."""

    def __init__(self, api: str, status: int, retry_after: str | None):
        super().__init__(f"{api} {status} Retry-After {retry_after}")
        self.retry_after = retry_after


class Lost(Exception):
    """The connection failed: expected only while the crash leg has the server down."""


class Wrong(AssertionError):
    """A broken check, named: the answer, a stream, an error's shape, a status."""

    def __init__(self, check: str, detail: str):
        super().__init__(f"{check}: {detail}")
        self.check = check
        self.detail = detail


@dataclass
class Streamed:
    raw: str
    ttft: float | None  # seconds from sending to the first generated output
    itls: list[float] = field(default_factory=list)  # seconds between outputs


def refusal(api: str, status: int, headers: httpx.Headers, body: str) -> Exception:
    """The exception for a non-200 answer: Overload when it is the API's overload status with Retry-After."""
    if status == OVERLOAD.get(api, 503):
        retry_after = headers.get("retry-after")
        if not retry_after or not retry_after.isdigit():
            return Wrong("overload", f"{api} {status} without a Retry-After in seconds: {headers.get('retry-after')!r}")
        check_error_shape(api, status, body)
        return Overload(api, status, retry_after)
    return Wrong("status", f"{api} answered {status}: {body[:300]}")


def check_error_shape(api: str, status: int, body: str) -> None:
    """The error body of the API that was called, with a message and no traceback."""
    try:
        data = json.loads(body)
    except ValueError:
        raise Wrong("error shape", f"{api} {status}: not JSON: {body[:200]!r}") from None
    if api == "anthropic":
        ok = data.get("type") == "error" and set(data.get("error") or {}) == {"type", "message"}
    elif api == "ollama":
        ok = set(data) == {"error"} and isinstance(data["error"], str)
    elif api == "azure":
        ok = set(data) == {"error"} and {"code", "message"} <= set(data["error"])
    else:
        ok = set(data) == {"error"} and set(data["error"]) == {"message", "type", "param", "code"}
    if not ok or "Traceback" in body:
        raise Wrong("error shape", f"{api} {status}: {body[:300]}")


def _is_output(api: str, data: dict[str, Any]) -> bool:
    """Whether a stream's event carries generated output (text or a tool call's arguments)."""
    if api in ("chat", "azure"):
        delta = (data.get("choices") or [{}])[0].get("delta") or {}
        return bool(delta.get("content") or delta.get("tool_calls"))
    if api == "responses":
        return data.get("type") in ("response.output_text.delta", "response.function_call_arguments.delta")
    if api == "anthropic":
        return data.get("type") == "content_block_delta"
    message = data.get("message") or {}
    return bool(message.get("content") or message.get("tool_calls"))


def stream(client: httpx.Client, api: str, body: dict[str, Any], *, stop_after: int | None = None) -> Streamed:
    """POST a streamed request; time its outputs; with ``stop_after``, hang up after that many outputs."""
    sent = time.perf_counter()
    lines: list[str] = []
    times: list[float] = []
    try:
        with client.stream("POST", PATHS[api], json={**body, "stream": True}, timeout=TIMEOUT) as r:
            if r.status_code != 200:
                raise refusal(api, r.status_code, r.headers, r.read().decode(errors="replace"))
            for line in r.iter_lines():
                lines.append(line)
                payload = line if api == "ollama" else line[5:].strip() if line.startswith("data:") else ""
                if payload and payload != "[DONE]" and _is_output(api, json.loads(payload)):
                    times.append(time.perf_counter())
                    if stop_after is not None and len(times) >= stop_after:
                        break  # leaving the block closes the connection mid-answer
    except httpx.TransportError as exc:
        raise Lost(f"{api} stream: {exc!r}") from exc
    ttft = times[0] - sent if times else None
    return Streamed("\n".join(lines) + "\n", ttft, [b - a for a, b in zip(times, times[1:])])


def check_stream(api: str, raw: str) -> dict[str, Any]:
    """The answer a well-formed stream adds up to: {"text", "calls": [(name, arguments)], "response"}."""
    try:
        if api in ("chat", "azure"):
            message = streams.check_chat_stream(raw)
            calls = [(c["name"], json.loads(c["arguments"])) for c in message["tool_calls"]]
            return {"text": message["content"], "calls": calls, "call_ids": [c["id"] for c in message["tool_calls"]]}
        if api == "responses":
            final = streams.check_responses_stream(raw)
            return {**responses_answer(final), "response": final}
        if api == "anthropic":
            checked = anthropic_stream.check_stream(raw)
            if checked.error is not None:
                raise AssertionError(f"the stream ended with an error: {checked.error}")
            return anthropic_answer(checked.message["content"])
        checked = ndjson.check_ndjson(raw.encode(), "chat")
        if checked.error is not None:
            raise AssertionError(f"the stream ended with an error: {checked.error}")
        return {"text": checked.text, "calls": [(c["function"]["name"], c["function"]["arguments"]) for c in checked.tool_calls]}
    except (AssertionError, KeyError, TypeError, ValueError) as exc:
        raise Wrong("stream", f"{api}: {exc!r}; tail {raw[-300:]!r}") from None


def responses_answer(response: dict[str, Any]) -> dict[str, Any]:
    text = "".join(p["text"] for item in response["output"] if item["type"] == "message" for p in item["content"])
    calls = [(i["name"], json.loads(i["arguments"])) for i in response["output"] if i["type"] == "function_call"]
    return {"text": text, "calls": calls, "call_ids": [i["call_id"] for i in response["output"] if i["type"] == "function_call"]}


def anthropic_answer(content: list[dict[str, Any]]) -> dict[str, Any]:
    text = "".join(b["text"] for b in content if b["type"] == "text")
    return {"text": text, "calls": [(b["name"], b["input"]) for b in content if b["type"] == "tool_use"],
            "call_ids": [b["id"] for b in content if b["type"] == "tool_use"]}


@contextmanager
def sdk(api: str) -> Iterator[None]:
    """An SDK call's failures as the soak's outcomes."""
    try:
        yield
    except (openai.APIStatusError, anthropic.APIStatusError) as exc:
        r = exc.response
        raise refusal(api, r.status_code, r.headers, r.text) from None
    except (openai.APIConnectionError, anthropic.APIConnectionError, httpx.TransportError) as exc:
        raise Lost(f"{api}: {exc!r}") from exc


def expect(check: str, got: Any, wanted: Any) -> None:
    if got != wanted:
        raise Wrong(check, f"expected {wanted!r}, got {got!r}")

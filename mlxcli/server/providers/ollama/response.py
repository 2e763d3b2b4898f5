"""Ollama's answers to chat and generate: one JSON object, or NDJSON lines ending with ``done: true``.

Every line carries ``model`` and ``created_at``; the last one ``done_reason`` and the metrics, in
nanoseconds: ``total_duration`` (from the request's arrival), ``load_duration`` (waiting for the
engine and loading the model), ``prompt_eval_duration`` (prefill, up to the first token) and
``eval_duration`` (the first token to the last), so ``total >= load + prompt_eval + eval``. A tool
call goes out whole, its arguments an object, once the next event shows it complete.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Any, Iterable

from mlxcli.core.collect import Completion
from mlxcli.core.errors import MlxcliError
from mlxcli.core.events import Event, Finish, ReasoningDelta, TextDelta, ToolCallDelta
from mlxcli.core.request import ToolCall, new_id
from mlxcli.server.framing import ndjson_line
from mlxcli.server.providers import common

DONE_REASONS = {"stop": "stop", "length": "length", "tool_calls": "stop", "cancelled": "stop"}  # Ollama ends a call with "stop"


def timestamp(unix: float | None = None) -> str:
    """RFC 3339 in UTC, as Ollama writes ``created_at``."""
    moment = datetime.fromtimestamp(time.time() if unix is None else unix, timezone.utc)
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


def nanoseconds(seconds: float) -> int:
    return round(seconds * 1e9)


def metrics(finish: Finish, started: float) -> dict[str, Any]:
    t, usage = finish.timings, finish.usage
    return {
        "done_reason": DONE_REASONS[finish.reason],
        "total_duration": nanoseconds(time.perf_counter() - started),
        "load_duration": nanoseconds(t.queued),
        "prompt_eval_count": usage.prompt_tokens,
        "prompt_eval_duration": nanoseconds(t.prefill),
        "eval_count": usage.completion_tokens,
        "eval_duration": nanoseconds(t.decode),
    }


def tool_call_json(index: int, call: ToolCall) -> dict[str, Any]:
    return {"id": call.id, "function": {"index": index, "name": call.name, "arguments": common.arguments_object(call.arguments)}}


def _body(kind: str, model: str, text: str = "", reasoning: str = "", calls: Iterable[tuple[int, ToolCall]] = ()) -> dict[str, Any]:
    """The fields of one chat or generate object before ``done``."""
    body: dict[str, Any] = {"model": model, "created_at": timestamp()}
    if kind == "generate":
        body["response"] = text
        if reasoning:
            body["thinking"] = reasoning
        return body
    message: dict[str, Any] = {"role": "assistant", "content": text}
    if reasoning:
        message["thinking"] = reasoning
    tool_calls = [tool_call_json(index, call) for index, call in calls]
    if tool_calls:
        message["tool_calls"] = tool_calls
    body["message"] = message
    return body


def answer(kind: str, model: str, completion: Completion, started: float) -> dict[str, Any]:
    """A whole answer (``stream: false``)."""
    finish = completion.finish or Finish("stop")
    body = _body(kind, model, completion.text, completion.reasoning, enumerate(completion.tool_calls))
    return {**body, "done": True, **metrics(finish, started)}


def loaded(kind: str, model: str, *, unloaded: bool) -> dict[str, Any]:
    return {**_body(kind, model), "done": True, "done_reason": "unload" if unloaded else "load"}


class StreamEncoder:
    """NDJSON lines: one per text or reasoning delta and per whole tool call, then the final object."""

    def __init__(self, kind: str, model: str, started: float):
        self.kind = kind
        self.model = model
        self.started = started
        self._call: tuple[int, ToolCall] | None = None  # the tool call being streamed

    def start(self) -> Iterable[bytes]:
        return ()  # the first line is the first token's

    def event(self, event: Event) -> Iterable[bytes]:
        if isinstance(event, ToolCallDelta):
            if self._call is None or self._call[0] != event.index:
                yield from self._flush()
                self._call = (event.index, ToolCall(id=event.id or new_id("call_"), name=event.name or "", arguments=""))
            self._call[1].arguments += event.arguments
            return
        yield from self._flush()
        if isinstance(event, TextDelta):
            yield self._line(text=event.text)
        elif isinstance(event, ReasoningDelta):
            yield self._line(reasoning=event.text)
        elif isinstance(event, Finish):
            yield ndjson_line({**_body(self.kind, self.model), "done": True, **metrics(event, self.started)})

    def _flush(self) -> Iterable[bytes]:
        if self._call is not None:
            call, self._call = self._call, None
            yield self._line(calls=[call])

    def _line(self, **parts: Any) -> bytes:
        return ndjson_line({**_body(self.kind, self.model, **parts), "done": False})

    def error(self, err: MlxcliError) -> Iterable[bytes]:
        yield ndjson_line({"error": err.message})  # Ollama's clients raise on it; then the stream ends

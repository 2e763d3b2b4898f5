"""The Responses API's response object and its stream (wire-formats §2.2, §2.3).

One ``OutputBuilder`` turns the neutral events into output items, for the SSE stream and
for the final object alike; item ids are fixed per output index in the ``ResponseState``,
so replaying the same events (to store the response, or to answer without streaming)
gives exactly what was streamed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable

from mlxcli.core.collect import Completion
from mlxcli.core.errors import EngineFailure, MlxcliError
from mlxcli.core.events import Event, Finish, ReasoningDelta, TextDelta, TokenLogprob, ToolCallDelta, Usage
from mlxcli.core.request import new_id, now
from mlxcli.server.framing import sse_event
from mlxcli.server.providers.openai.responses_tools import output_item
from mlxcli.store import StoredMessage


@dataclass
class ResponseState:
    """Everything about one response that the stream, the final object and the store share."""

    id: str
    created_at: int
    input: list[StoredMessage]
    instructions: str | None = None
    previous_id: str | None = None
    store: bool = True
    max_output_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    tools: list[dict[str, Any]] = field(default_factory=list)
    tool_choice: Any = "auto"
    parallel_tool_calls: bool = True
    reasoning: dict[str, Any] = field(default_factory=lambda: {"effort": None, "summary": None})
    text_format: dict[str, Any] = field(default_factory=lambda: {"type": "text"})
    metadata: dict[str, str] = field(default_factory=dict)
    user: str | None = None
    call_shapes: dict[str, dict[str, Any]] = field(default_factory=dict)  # tool name → its call's shape (responses_tools)
    truncation: str | None = None  # as the request said it (None: not said)
    logprobs: bool = False  # include: message.output_text.logprobs
    top_logprobs: int | None = None  # as the request said it
    _item_ids: dict[int, str] = field(default_factory=dict, init=False, repr=False)
    _call_ids: dict[int, str] = field(default_factory=dict, init=False, repr=False)
    _completed_at: int | None = field(default=None, init=False, repr=False)

    def item_id(self, output_index: int, prefix: str) -> str:
        return self._item_ids.setdefault(output_index, new_id(prefix))

    def call_id(self, tool_index: int, given: str | None) -> str:
        return self._call_ids.setdefault(tool_index, given or new_id("call_"))

    @property
    def completed_at(self) -> int:
        if self._completed_at is None:
            self._completed_at = now()
        return self._completed_at


# ---- output items ----------------------------------------------------------


def text_part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def logprob_json(t: TokenLogprob) -> dict[str, Any]:
    def entry(token: str, logprob: float) -> dict[str, Any]:
        return {"token": token, "bytes": list(token.encode()), "logprob": logprob}

    return {**entry(t.token, t.logprob), "top_logprobs": [entry(*alt) for alt in t.top]}


class OutputBuilder:
    """Neutral events → output items, one after another; yields the wire events (without sequence numbers)."""

    def __init__(self, state: ResponseState):
        self.state = state
        self.items: list[dict[str, Any]] = []
        self._open: dict[str, Any] | None = None
        self._open_key: Any = None  # "message", "reasoning" or ("call", tool index)
        self._shape: dict[str, Any] | None = None  # the open call's shape, when its tool asks for one
        # The logprobs of tokens whose text is not out yet (they come before it): the next text delta's, or
        # dropped at reasoning or a call (the answer's text carries the logprobs, markup just before it included).
        self._logprobs: list[dict[str, Any]] = []

    def feed(self, event: Event) -> list[dict[str, Any]]:
        if isinstance(event, TokenLogprob):
            if self.state.logprobs:
                self._logprobs.append(logprob_json(event))
            return []
        if isinstance(event, TextDelta):
            return self._delta("message", event.text)
        if isinstance(event, ReasoningDelta):
            return self._delta("reasoning", event.text)
        if isinstance(event, ToolCallDelta):
            return self._call(event)
        return []

    def close(self, status: str = "completed") -> list[dict[str, Any]]:
        """Close the open item (``incomplete`` when the response failed half-way)."""
        item, self._open, self._open_key = self._open, None, None
        if item is None:
            return []
        index = len(self.items) - 1
        item["status"] = status
        events: list[dict[str, Any]] = []
        shape, self._shape = self._shape, None
        if shape is not None and "type" in shape:  # a shell call: sent whole, once its command is known
            item = self.items[index] = output_item(item, shape)
            events.append({"type": "response.output_item.added", "output_index": index, "item": {**_copy(item), "status": "in_progress"}})
        elif item["type"] == "function_call":
            events.append(
                {"type": "response.function_call_arguments.done", "item_id": item["id"], "output_index": index,
                 "name": item["name"], "arguments": item["arguments"]}
            )
        elif item["type"] == "custom_tool_call":
            events.append({"type": "response.custom_tool_call_input.done", "item_id": item["id"], "output_index": index,
                           "input": item["input"]})
        else:
            part = item["content"][0]
            prefix = "response.output_text" if item["type"] == "message" else "response.reasoning_text"
            where = {"item_id": item["id"], "output_index": index, "content_index": 0}
            done = {"type": f"{prefix}.done", **where, "text": part["text"]}
            if item["type"] == "message":
                done["logprobs"] = list(part["logprobs"])
            events += [done, {"type": "response.content_part.done", **where, "part": dict(part)}]
        events.append({"type": "response.output_item.done", "output_index": index, "item": _copy(item)})
        return events

    def _delta(self, kind: str, text: str) -> list[dict[str, Any]]:
        if not text:
            return []
        events = self._ensure_open(kind)
        index = len(self.items) - 1
        item = self.items[index]
        item["content"][0]["text"] += text
        event = {"type": "response.output_text.delta" if kind == "message" else "response.reasoning_text.delta",
                 "item_id": item["id"], "output_index": index, "content_index": 0, "delta": text}
        logprobs, self._logprobs = self._logprobs, []
        if kind == "message":
            event["logprobs"] = logprobs
            item["content"][0]["logprobs"] += logprobs
        return events + [event]

    def _ensure_open(self, kind: str) -> list[dict[str, Any]]:
        if self._open_key == kind:
            return []
        events = self.close()
        index = len(self.items)
        if kind == "message":
            item = {"id": self.state.item_id(index, "msg_"), "type": "message", "status": "in_progress",
                    "role": "assistant", "content": []}
            part = text_part("")
        else:
            item = {"id": self.state.item_id(index, "rs_"), "type": "reasoning", "status": "in_progress",
                    "summary": [], "content": []}
            part = {"type": "reasoning_text", "text": ""}
        events.append({"type": "response.output_item.added", "output_index": index, "item": _copy(item)})
        events.append({"type": "response.content_part.added", "item_id": item["id"], "output_index": index,
                       "content_index": 0, "part": dict(part)})
        item["content"].append(part)
        self.items.append(item)
        self._open, self._open_key = item, kind
        return events

    def _call(self, event: ToolCallDelta) -> list[dict[str, Any]]:
        self._logprobs = []
        key = ("call", event.index)
        events: list[dict[str, Any]] = []
        if self._open_key != key:
            events = self.close()
            index = len(self.items)
            call_id = self.state.call_id(event.index, event.id)
            if event.custom:
                item = {"id": self.state.item_id(index, "ctc_"), "type": "custom_tool_call", "status": "in_progress",
                        "call_id": call_id, "name": event.name or "", "input": ""}
            else:
                item = {"id": self.state.item_id(index, "fc_"), "type": "function_call", "status": "in_progress",
                        "call_id": call_id, "name": event.name or "", "arguments": ""}
            self._shape = self.state.call_shapes.get(item["name"])
            if self._shape is None or "namespace" in self._shape:
                item = output_item(item, self._shape)
                events.append({"type": "response.output_item.added", "output_index": index, "item": _copy(item)})
            self.items.append(item)
            self._open, self._open_key = item, key
        item = self._open
        assert item is not None
        if event.name and not item["name"]:
            item["name"] = event.name
        if event.arguments:
            custom = item["type"] == "custom_tool_call"
            item["input" if custom else "arguments"] += event.arguments
            kind = "response.custom_tool_call_input.delta" if custom else "response.function_call_arguments.delta"
            if self._shape is None or "namespace" in self._shape:
                events.append({"type": kind, "item_id": item["id"], "output_index": len(self.items) - 1, "delta": event.arguments})
        return events


def _copy(item: dict[str, Any]) -> dict[str, Any]:
    out = dict(item)
    if "content" in out:
        out["content"] = [dict(p) for p in out["content"]]
    return out


# ---- the response object ---------------------------------------------------


def usage_json(usage: Usage) -> dict[str, Any]:
    return {
        "input_tokens": usage.prompt_tokens,
        "input_tokens_details": {"cached_tokens": usage.cached_tokens, "cache_write_tokens": usage.cache_write_tokens},
        "output_tokens": usage.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
        "total_tokens": usage.total_tokens,
    }


def response_json(
    state: ResponseState,
    model: str,
    *,
    status: str = "in_progress",
    output: list[dict[str, Any]] | None = None,
    usage: Usage | None = None,
    error: dict[str, Any] | None = None,
    incomplete_reason: str | None = None,
) -> dict[str, Any]:
    finished = status != "in_progress"
    return {
        "id": state.id,
        "object": "response",
        "created_at": state.created_at,
        "completed_at": state.completed_at if status == "completed" else None,
        "status": status,
        "error": error,
        "incomplete_details": {"reason": incomplete_reason} if incomplete_reason else None,
        "instructions": state.instructions,
        "max_output_tokens": state.max_output_tokens,
        "model": model,
        "output": [_copy(i) for i in output or []],
        "parallel_tool_calls": state.parallel_tool_calls,
        "previous_response_id": state.previous_id,
        "reasoning": state.reasoning,
        "store": state.store,
        "temperature": state.temperature,
        "text": {"format": state.text_format},
        "tool_choice": state.tool_choice,
        "tools": state.tools,
        "top_p": state.top_p,
        "top_logprobs": state.top_logprobs,
        "truncation": state.truncation or "disabled",
        "usage": usage_json(usage) if (finished and usage is not None) else None,
        "user": state.user,
        "metadata": state.metadata,
    }


def item_status(finish: Finish) -> str:
    """The status of the item an answer ends in: cut off by the token limit, it is incomplete too."""
    return "incomplete" if finish.reason == "length" else "completed"


def final_json(state: ResponseState, model: str, items: list[dict[str, Any]], finish: Finish) -> dict[str, Any]:
    if finish.reason == "length":
        return response_json(state, model, status="incomplete", output=items, usage=finish.usage,
                             incomplete_reason="max_output_tokens")
    if finish.reason == "cancelled":
        return failed_json(state, model, items, EngineFailure("The response was cancelled: the server is shutting down."), finish.usage)
    return response_json(state, model, status="completed", output=items, usage=finish.usage)


def failed_json(state: ResponseState, model: str, items: list[dict[str, Any]], err: MlxcliError, usage: Usage | None = None) -> dict[str, Any]:
    error = {"code": err.code or "server_error", "message": err.message}
    return response_json(state, model, status="failed", output=items, usage=usage or Usage(), error=error)


def replay(state: ResponseState, model: str, completion: Completion) -> dict[str, Any]:
    """The final response object for a finished generation (identical to what a stream of it ended with)."""
    builder = OutputBuilder(state)
    for event in completion.events:
        builder.feed(event)
    finish = completion.finish or Finish("stop")
    builder.close(item_status(finish))
    return final_json(state, model, builder.items, finish)


TERMINAL_EVENTS = {"completed": "response.completed", "incomplete": "response.incomplete", "failed": "response.failed"}


class ResponsesStreamEncoder:
    """Events per §2.3: created, in_progress, strictly nested items, one terminal event; no [DONE]."""

    def __init__(self, state: ResponseState, model: str):
        self.state = state
        self.model = model
        self.builder = OutputBuilder(state)
        self.sequence = 0

    def _frames(self, events: Iterable[dict[str, Any]]) -> Iterable[bytes]:
        for event in events:
            payload = {"type": event["type"], "sequence_number": self.sequence, **event}
            self.sequence += 1
            yield sse_event(event["type"], payload)

    def start(self) -> Iterable[bytes]:
        response = response_json(self.state, self.model)
        yield from self._frames([{"type": "response.created", "response": response},
                                 {"type": "response.in_progress", "response": response}])

    def event(self, event: Event) -> Iterable[bytes]:
        if not isinstance(event, Finish):
            yield from self._frames(self.builder.feed(event))
            return
        yield from self._frames(self.builder.close(item_status(event)))
        final = final_json(self.state, self.model, self.builder.items, event)
        yield from self._frames([{"type": TERMINAL_EVENTS[final["status"]], "response": final}])

    def error(self, err: MlxcliError) -> Iterable[bytes]:
        yield from self._frames(self.builder.close("incomplete"))
        final = failed_json(self.state, self.model, self.builder.items, err)
        yield from self._frames([{"type": "response.failed", "response": final}])

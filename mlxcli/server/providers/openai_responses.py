"""OpenAI Responses API: request parsing, response and stream encoding, stored responses (wire-formats §2).

Input items map one-to-one onto neutral messages (``StoredMessage``), which keep
the item's id: a ``message`` item is a message, a ``function_call`` an assistant
message with one tool call, a ``function_call_output`` a ``tool`` message, an
echoed ``reasoning`` item an assistant message with reasoning only. Consecutive
assistant pieces are merged into one message for the chat template.

One ``OutputBuilder`` turns the neutral events into output items, for the SSE
stream and for the final object alike; item ids are fixed per output index in
the ``ResponseState``, so replaying the same events (to store the response, or
to answer without streaming) gives exactly what was streamed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Iterable

import falcon

from mlxcli.core.collect import Completion
from mlxcli.core.errors import EngineFailure, InvalidRequest, MlxcliError, NotFound
from mlxcli.core.events import Event, Finish, ReasoningDelta, TextDelta, ToolCallDelta, Usage
from mlxcli.core.request import ChatRequest, Message, Sampling, ToolCall, ToolSpec, new_id, now
from mlxcli.server.http import send_json
from mlxcli.server.providers.openai_chat import allowed_tools
from mlxcli.server.sse import event_frame
from mlxcli.server.validate import Obj, objects
from mlxcli.store import ConversationStore, StoredMessage, Turn
from mlxcli.store.records import answer_message

TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
MAX_ITEMS = 4096
MAX_TOOLS = 128
MAX_METADATA_KEYS = 16
INPUT_ROLES = ("user", "system", "developer", "assistant")
TEXT_PARTS = ("input_text", "output_text", "text", "summary_text", "reasoning_text")
ITEM_TYPES = ("message", "function_call", "function_call_output", "reasoning", "item_reference")
EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh", "max")


# ---- request ---------------------------------------------------------------


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
    metadata: dict[str, str] = field(default_factory=dict)
    user: str | None = None
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


def parse(body: dict[str, Any], store: ConversationStore) -> tuple[ChatRequest, dict[str, Any]]:
    """Body → (ChatRequest with the whole conversation, options). Raises InvalidRequest naming the parameter."""
    o = Obj(body)
    model = o.str("model", max_len=256)
    input_messages = _input(o)
    instructions = o.str("instructions")
    previous_id = o.str("previous_response_id", max_len=256)

    max_output_tokens = o.int("max_output_tokens", lo=1)
    if o.int("top_logprobs", lo=0, hi=20):
        raise InvalidRequest("'top_logprobs' is not supported by this server.", param="top_logprobs")
    sampling = Sampling(
        temperature=o.num("temperature", lo=0, hi=2),
        top_p=o.num("top_p", lo=0, hi=1),
        max_tokens=max_output_tokens,
    )
    _check_text_format(o)
    tool_objs = list(objects(o.list("tools", max_items=MAX_TOOLS)))
    tools = [_tool(t) for t in tool_objs]
    tool_choice, tool_choice_echo, tools = _tool_choice(o, tools)
    template_kwargs: dict[str, Any] = {}
    reasoning = {"effort": None, "summary": None}
    if (r := o.obj("reasoning")) is not None:
        reasoning = {"effort": r.str("effort", choices=EFFORTS), "summary": r.str("summary", choices=("auto", "concise", "detailed"))}
        if reasoning["effort"] is not None:
            template_kwargs["reasoning_effort"] = reasoning["effort"]

    state = ResponseState(
        id=new_id("resp_"),
        created_at=now(),
        input=input_messages,
        instructions=instructions,
        previous_id=previous_id,
        store=o.bool("store", default=True),
        max_output_tokens=max_output_tokens,
        temperature=sampling.temperature,
        top_p=sampling.top_p,
        tools=[t.data for t in tool_objs],
        tool_choice=tool_choice_echo,
        parallel_tool_calls=o.bool("parallel_tool_calls", default=True),
        reasoning=reasoning,
        metadata=_metadata(o),
        user=o.str("user", max_len=256),
    )
    stream = o.bool("stream", default=False)
    # Only a valid request reaches the store.
    messages: list[Message] = [Message(role="system", content=instructions)] if instructions else []
    messages += merge_assistant_runs(_history(store, previous_id) + input_messages)
    request = ChatRequest(
        messages=messages,
        sampling=sampling,
        model=model,
        tools=tools,
        tool_choice=tool_choice,
        parallel_tool_calls=state.parallel_tool_calls,
        template_kwargs=template_kwargs,
    )
    return request, {"stream": stream, "store": state.store, "state": state}


def _history(store: ConversationStore, previous_id: str | None) -> list[Message]:
    """The messages of every turn up to ``previous_id``; earlier instructions are not carried over."""
    if previous_id is None:
        return []
    chain = store.history(previous_id)
    if chain is None:
        raise InvalidRequest(
            f"Previous response with id '{previous_id}' not found.",
            param="previous_response_id",
            code="previous_response_not_found",
        )
    return [m for turn in chain for m in turn.input + turn.output]


def _input(o: Obj) -> list[StoredMessage]:
    if isinstance(o.raw("input"), str):
        return [StoredMessage(role="user", content=o.str("input"))]
    return [_item(i) for i in objects(o.list("input", required=True, min_items=1, max_items=MAX_ITEMS))]


def _item(i: Obj) -> StoredMessage:
    kind = i.str("type", choices=ITEM_TYPES)
    if kind is None:
        if not i.has("role"):
            raise InvalidRequest(
                f"Missing required parameter: '{i.param('type')}'.", param=i.param("type"), code="missing_required_parameter"
            )
        kind = "message"
    item_id = i.str("id", max_len=256) or None
    if kind == "message":
        role = i.str("role", required=True, choices=INPUT_ROLES)
        return StoredMessage(
            id=item_id or new_id("msg_"), role="system" if role == "developer" else role, content=_text(i, "content")
        )
    if kind == "function_call":
        name = i.str("name", required=True, max_len=64)
        call = ToolCall(id=i.str("call_id", required=True, max_len=256), name=name, arguments=i.str("arguments", required=True))
        return StoredMessage(id=item_id or new_id("fc_"), role="assistant", content=None, tool_calls=[call])
    if kind == "function_call_output":
        return StoredMessage(
            id=item_id or new_id("fco_"),
            role="tool",
            content=_text(i, "output"),
            tool_call_id=i.str("call_id", required=True, max_len=256),
        )
    if kind == "reasoning":
        text = _text(i, "content", required=False) or _text(i, "summary", required=False)
        return StoredMessage(id=item_id or new_id("rs_"), role="assistant", content=None, reasoning=text or "")
    raise InvalidRequest(
        "Input items of type 'item_reference' are not supported by this server: send the item itself, "
        "or continue with 'previous_response_id'.",
        param=i.param("type"),
    )


def _text(i: Obj, key: str, *, required: bool = True) -> str | None:
    """A string, or a list of text parts joined by newlines; other part types are refused."""
    value = i.raw(key)
    if value is None:
        if required:
            raise InvalidRequest(f"Missing required parameter: '{i.param(key)}'.", param=i.param(key), code="missing_required_parameter")
        return None
    if isinstance(value, str):
        return value
    texts = []
    for part in objects(i.list(key, max_items=1024)):
        kind = part.str("type", required=True)
        if kind in TEXT_PARTS:
            texts.append(part.str("text", required=True))
        elif kind == "refusal":
            texts.append(part.str("refusal", required=True))
        else:
            raise InvalidRequest(
                f"Content part type {kind!r} is not supported by this model (text only).", param=part.param("type")
            )
    return "\n".join(texts)


def merge_assistant_runs(messages: list[Message]) -> list[Message]:
    """Join consecutive assistant messages (reasoning, text, function calls) into one turn for the template."""
    merged: list[Message] = []
    for m in messages:
        last = merged[-1] if merged else None
        if m.role == "assistant" and last is not None and last.role == "assistant":
            merged[-1] = Message(
                role="assistant",
                content=_join(last.content, m.content),
                tool_calls=last.tool_calls + m.tool_calls,
                reasoning=_join(last.reasoning, m.reasoning),
            )
        else:
            merged.append(m)
    return merged


def _join(a: str | None, b: str | None) -> str | None:
    if a and b:
        return a + "\n" + b
    return a or b


def _check_text_format(o: Obj) -> None:
    text = o.obj("text")
    fmt = text.obj("format") if text is not None else None
    if fmt is None:
        return
    kind = fmt.str("type", required=True)
    if kind != "text":
        raise InvalidRequest(
            f"text.format {kind!r} is not supported by this server: only plain text output ('text').",
            param=fmt.param("type"),
        )


def _tool(t: Obj) -> ToolSpec:
    kind = t.str("type", required=True)
    if kind != "function":
        raise InvalidRequest(
            f"Tool type {kind!r} is not supported by this server: only 'function' tools.", param=t.param("type")
        )
    name = t.str("name", required=True)
    if not TOOL_NAME.match(name):
        raise InvalidRequest(f"Invalid value for '{t.param('name')}': must match ^[a-zA-Z0-9_-]{{1,64}}$.", param=t.param("name"))
    parameters = t.obj("parameters")
    t.bool("strict")
    return ToolSpec(
        name=name,
        description=t.str("description"),
        parameters=parameters.data if parameters else {"type": "object", "properties": {}},
    )


def _tool_choice(o: Obj, tools: list[ToolSpec]) -> tuple[str | dict[str, Any], Any, list[ToolSpec]]:
    """(the neutral choice, the value echoed in the response, the tools the model may call)."""
    value = o.raw("tool_choice")
    if value is None:
        return ("auto" if tools else "none"), "auto", tools
    if isinstance(value, str):
        choice = o.str("tool_choice", choices=("none", "auto", "required"))
        return choice, choice, tools
    choice = o.obj("tool_choice")
    kind = choice.str("type", required=True, choices=("function", "allowed_tools"))
    if kind == "function":
        name = choice.str("name", required=True)
        if name not in {t.name for t in tools}:
            raise InvalidRequest(f"tool_choice names {name!r}, which is not in 'tools'.", param="tool_choice")
        return {"name": name}, choice.data, tools
    mode = choice.str("mode", default="auto", choices=("auto", "required"))
    return mode, choice.data, allowed_tools(tools, list(objects(choice.list("tools", required=True, max_items=MAX_TOOLS))))


def _metadata(o: Obj) -> dict[str, str]:
    meta = o.obj("metadata")
    if meta is None:
        return {}
    if len(meta.data) > MAX_METADATA_KEYS:
        raise InvalidRequest(f"'metadata' can have at most {MAX_METADATA_KEYS} keys.", param="metadata")
    return {key: meta.str(key, max_len=512) for key in meta.data if meta.raw(key) is not None}


# ---- output items ----------------------------------------------------------


def _text_part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


class OutputBuilder:
    """Neutral events → output items, one after another; yields the wire events (without sequence numbers)."""

    def __init__(self, state: ResponseState):
        self.state = state
        self.items: list[dict[str, Any]] = []
        self._open: dict[str, Any] | None = None
        self._open_key: Any = None  # "message", "reasoning" or ("call", tool index)

    def feed(self, event: Event) -> list[dict[str, Any]]:
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
        if item["type"] == "function_call":
            events.append(
                {"type": "response.function_call_arguments.done", "item_id": item["id"], "output_index": index,
                 "name": item["name"], "arguments": item["arguments"]}
            )
        else:
            part = item["content"][0]
            prefix = "response.output_text" if item["type"] == "message" else "response.reasoning_text"
            where = {"item_id": item["id"], "output_index": index, "content_index": 0}
            done = {"type": f"{prefix}.done", **where, "text": part["text"]}
            if item["type"] == "message":
                done["logprobs"] = []
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
        if kind == "message":
            event["logprobs"] = []
        return events + [event]

    def _ensure_open(self, kind: str) -> list[dict[str, Any]]:
        if self._open_key == kind:
            return []
        events = self.close()
        index = len(self.items)
        if kind == "message":
            item = {"id": self.state.item_id(index, "msg_"), "type": "message", "status": "in_progress",
                    "role": "assistant", "content": []}
            part = _text_part("")
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
        key = ("call", event.index)
        events: list[dict[str, Any]] = []
        if self._open_key != key:
            events = self.close()
            index = len(self.items)
            item = {"id": self.state.item_id(index, "fc_"), "type": "function_call", "status": "in_progress",
                    "call_id": self.state.call_id(event.index, event.id), "name": event.name or "", "arguments": ""}
            events.append({"type": "response.output_item.added", "output_index": index, "item": _copy(item)})
            self.items.append(item)
            self._open, self._open_key = item, key
        item = self._open
        assert item is not None
        if event.name and not item["name"]:
            item["name"] = event.name
        if event.arguments:
            item["arguments"] += event.arguments
            events.append({"type": "response.function_call_arguments.delta", "item_id": item["id"],
                           "output_index": len(self.items) - 1, "delta": event.arguments})
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
        "input_tokens_details": {"cached_tokens": usage.cached_tokens},
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
        "text": {"format": {"type": "text"}},
        "tool_choice": state.tool_choice,
        "tools": state.tools,
        "top_p": state.top_p,
        "truncation": "disabled",
        "usage": usage_json(usage) if (finished and usage is not None) else None,
        "user": state.user,
        "metadata": state.metadata,
    }


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
    builder.close()
    return final_json(state, model, builder.items, completion.finish or Finish("stop"))


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
            yield event_frame(event["type"], payload)

    def start(self) -> Iterable[bytes]:
        response = response_json(self.state, self.model)
        yield from self._frames([{"type": "response.created", "response": response},
                                 {"type": "response.in_progress", "response": response}])

    def event(self, event: Event) -> Iterable[bytes]:
        if not isinstance(event, Finish):
            yield from self._frames(self.builder.feed(event))
            return
        yield from self._frames(self.builder.close())
        final = final_json(self.state, self.model, self.builder.items, event)
        yield from self._frames([{"type": TERMINAL_EVENTS[final["status"]], "response": final}])

    def error(self, err: MlxcliError) -> Iterable[bytes]:
        yield from self._frames(self.builder.close("incomplete"))
        final = failed_json(self.state, self.model, self.builder.items, err)
        yield from self._frames([{"type": "response.failed", "response": final}])


class Provider:
    """The Responses API for the generic Generate resource; it needs the store for previous_response_id."""

    name = "openai"

    def __init__(self, store: ConversationStore):
        self.store = store

    def parse(self, body: dict[str, Any]) -> tuple[ChatRequest, dict[str, Any]]:
        return parse(body, self.store)

    def response(self, completion: Completion, model: str, options: dict[str, Any]) -> dict[str, Any]:
        if completion.finish is not None and completion.finish.reason == "cancelled":
            raise EngineFailure("The response was cancelled: the server is shutting down.")
        return replay(options["state"], model, completion)

    def stream_encoder(self, model: str, options: dict[str, Any]) -> ResponsesStreamEncoder:
        return ResponsesStreamEncoder(options["state"], model)

    def turn(self, request: ChatRequest, completion: Completion, model: str, options: dict[str, Any]) -> Turn:
        state: ResponseState = options["state"]
        response = replay(state, model, completion)
        message_id = next((i["id"] for i in response["output"] if i["type"] == "message"), None)
        answer = answer_message(completion, id=message_id)
        answer.tool_calls = [  # with the call ids the client saw
            ToolCall(id=i["call_id"], name=i["name"], arguments=i["arguments"])
            for i in response["output"]
            if i["type"] == "function_call"
        ]
        return Turn(
            id=state.id,
            source="responses",
            model=model,
            input=state.input,
            output=[answer],
            usage=completion.finish.usage if completion.finish else Usage(),
            status=response["status"],
            previous_id=state.previous_id,
            instructions=state.instructions,
            created_at=float(state.created_at),
            completed_at=float(state.completed_at),
            metadata=dict(state.metadata),
            response=response,
        )


# ---- stored responses: retrieve, delete, input items -------------------------


def input_item_json(m: StoredMessage) -> dict[str, Any]:
    """A stored input message as the Responses item it came from."""
    if m.role == "tool":
        return {"id": m.id, "type": "function_call_output", "call_id": m.tool_call_id, "output": m.content or "",
                "status": "completed"}
    if m.role == "assistant" and m.tool_calls and not m.content:
        call = m.tool_calls[0]
        return {"id": m.id, "type": "function_call", "call_id": call.id, "name": call.name,
                "arguments": call.arguments, "status": "completed"}
    if m.role == "assistant" and m.reasoning is not None and not m.content:
        return {"id": m.id, "type": "reasoning", "summary": [],
                "content": [{"type": "reasoning_text", "text": m.reasoning}], "status": "completed"}
    if m.role == "assistant":
        content = [_text_part(m.content or "")]
    else:
        content = [{"type": "input_text", "text": m.content or ""}]
    return {"id": m.id, "type": "message", "role": m.role, "content": content, "status": "completed"}


class StoredResponses:
    """GET/DELETE a stored response and list its input items. Routes are the caller's (Azure maps onto them)."""

    def __init__(self, store: ConversationStore):
        self.store = store

    def _turn(self, response_id: str) -> Turn:
        turn = self.store.get(response_id)
        if turn is None or turn.response is None:  # other front ends' turns are not Responses objects
            raise NotFound(f"Response with id '{response_id}' not found.", param="response_id")
        return turn

    def on_get(self, req: falcon.Request, resp: falcon.Response, response_id: str) -> None:
        send_json(resp, self._turn(response_id).response)

    def on_delete(self, req: falcon.Request, resp: falcon.Response, response_id: str) -> None:
        self._turn(response_id)
        if not self.store.delete(response_id):
            raise NotFound(f"Response with id '{response_id}' not found.", param="response_id")
        send_json(resp, {"id": response_id, "object": "response", "deleted": True})

    def on_get_input_items(self, req: falcon.Request, resp: falcon.Response, response_id: str) -> None:
        limit = _query_int(req, "limit", default=20, lo=1, hi=100)
        order = req.get_param("order") or "desc"
        if order not in ("asc", "desc"):
            raise InvalidRequest(f"Invalid value for 'order': expected 'asc' or 'desc', got {order!r}.", param="order")
        items = [input_item_json(m) for m in self._turn(response_id).input]
        if order == "desc":
            items.reverse()
        after = req.get_param("after")
        if after:
            position = next((n for n, item in enumerate(items) if item["id"] == after), None)
            if position is None:
                raise InvalidRequest(f"Item with id '{after}' is not an input item of '{response_id}'.", param="after")
            items = items[position + 1 :]
        page = items[:limit]
        send_json(
            resp,
            {
                "object": "list",
                "data": page,
                "first_id": page[0]["id"] if page else None,
                "last_id": page[-1]["id"] if page else None,
                "has_more": len(items) > limit,
            },
        )


def _query_int(req: falcon.Request, name: str, *, default: int, lo: int, hi: int) -> int:
    raw = req.get_param(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise InvalidRequest(f"Invalid value for '{name}': expected an integer, got {raw!r}.", param=name) from None
    if not lo <= value <= hi:
        raise InvalidRequest(f"Invalid value for '{name}': must be between {lo} and {hi}, got {value}.", param=name)
    return value

"""OpenAI Responses API: the request (wire-formats §2.1) and how it is answered and stored.

Input items map one-to-one onto neutral messages (``StoredMessage``), which keep the
item's id: a ``message`` item is a message, a ``function_call`` an assistant message
with one tool call, a ``function_call_output`` a ``tool`` message, an echoed
``reasoning`` item an assistant message with reasoning only. Consecutive assistant
pieces are merged into one message for the chat template. ``previous_response_id``
prepends the stored conversation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mlxcli.core.collect import Completion
from mlxcli.core.errors import EngineFailure, InvalidRequest
from mlxcli.core.events import Usage
from mlxcli.core.request import ChatRequest, Grammar, ImageInput, Message, Sampling, new_id, now
from mlxcli.server import images
from mlxcli.server.providers import common
from mlxcli.server.providers.openai import responses_tools, tools
from mlxcli.server.providers.openai.response_object import ResponsesStreamEncoder, ResponseState, replay
from mlxcli.server.validate import Obj, objects
from mlxcli.store import ConversationStore, StoredMessage, Turn
from mlxcli.store.records import answer_message

MAX_ITEMS = 4096
MAX_METADATA_KEYS = 16
INPUT_ROLES = ("user", "system", "developer", "assistant")
TEXT_PARTS = {kind: "text" for kind in ("input_text", "output_text", "text", "summary_text", "reasoning_text")} | {"refusal": "refusal"}
CALL_TYPES = ("function_call", "custom_tool_call", "local_shell_call", "shell_call")
OUTPUT_TYPES = ("function_call_output", "custom_tool_call_output", "local_shell_call_output", "shell_call_output")
ITEM_TYPES = ("message", *CALL_TYPES, *OUTPUT_TYPES, "reasoning", "item_reference")
# Responses' `truncation`: "auto" drops the oldest items to fit the window, "disabled" answers 400.
TRUNCATION = {"auto": "truncate", "disabled": "error"}
# The one `include` value that changes what this server writes: the answer's text with its tokens' logprobs.
LOGPROBS = "message.output_text.logprobs"


@dataclass
class ResponsesCall:
    """One Responses request: the whole conversation as a neutral request, and the response's state."""

    request: ChatRequest
    stream: bool
    state: ResponseState

    @property
    def store(self) -> bool:
        return self.state.store

    def response(self, completion: Completion, model: str) -> dict[str, Any]:
        if completion.finish is not None and completion.finish.reason == "cancelled":
            raise EngineFailure("The response was cancelled: the server is shutting down.")
        return replay(self.state, model, completion)

    def encoder(self, model: str, prompt_tokens: int) -> ResponsesStreamEncoder:
        return ResponsesStreamEncoder(self.state, model)

    def turn(self, completion: Completion, model: str) -> Turn:
        state = self.state
        response = replay(state, model, completion)
        message_id = next((i["id"] for i in response["output"] if i["type"] == "message"), None)
        answer = answer_message(completion, id=message_id)
        answer.tool_calls = [  # with the call ids the client saw, under the names the model was offered
            call for i in response["output"] if (call := responses_tools.call_from_output(i)) is not None
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
            compaction=completion.finish.compaction if completion.finish else None,
        )


def parse(body: dict[str, Any], store: ConversationStore) -> ResponsesCall:
    """Raises InvalidRequest naming the parameter; only a valid request reads the store."""
    o = Obj(body)
    model = common.model_name(o)
    input_messages = _input(o)
    instructions = o.str("instructions")
    previous_id = o.str("previous_response_id", max_len=256)

    top_logprobs = o.int("top_logprobs", lo=0, hi=20)
    # Asking for alternatives asks for the logprobs too.
    logprobs = LOGPROBS in o.str_or_list("include", max_items=32, max_len=128) or bool(top_logprobs)
    sampling = Sampling(**common.sampling_fields(o, ("temperature", "top_p")), max_tokens=common.max_tokens(o, "max_output_tokens"))
    response_format, text_format = _text_format(o)
    specs, call_shapes = responses_tools.tools(o)
    tool_fields = tools.tool_fields(o, specs, nested=False)
    reasoning: dict[str, Any] = {"effort": None, "summary": None}
    if (r := o.obj("reasoning")) is not None:
        reasoning = {"effort": r.str("effort", choices=tools.EFFORTS), "summary": r.str("summary", choices=("auto", "concise", "detailed"))}

    state = ResponseState(
        id=new_id("resp_"),
        created_at=now(),
        input=input_messages,
        instructions=instructions,
        previous_id=previous_id,
        store=o.bool("store", default=True),
        max_output_tokens=sampling.max_tokens,
        temperature=sampling.temperature,
        top_p=sampling.top_p,
        tools=[t for t, _ in o.list("tools")],
        tool_choice=o.raw("tool_choice") if o.raw("tool_choice") is not None else "auto",
        parallel_tool_calls=tool_fields["parallel_tool_calls"],
        reasoning=reasoning,
        text_format=text_format,
        metadata=_metadata(o),
        user=o.str("user", max_len=256),
        call_shapes=call_shapes,
        truncation=o.str("truncation", choices=tuple(TRUNCATION)),
        logprobs=logprobs,
        top_logprobs=top_logprobs,
    )
    state.input = input_messages = _resolve(store, input_messages)
    messages: list[Message] = [Message(role="system", content=instructions)] if instructions else []
    messages += merge_assistant_runs(_history(store, previous_id) + input_messages)
    request = ChatRequest(
        messages, sampling, model, reasoning=tools.neutral_effort(reasoning["effort"]), response_format=response_format,
        logprobs=(top_logprobs or 0) if logprobs else None, **tool_fields,
    )
    request.context_overflow = TRUNCATION.get(state.truncation)  # not said: the server's --context-overflow
    return ResponsesCall(request, stream=o.bool("stream", default=False), state=state)


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


def _input(o: Obj) -> list[StoredMessage | Reference]:
    if isinstance(o.raw("input"), str):
        return [StoredMessage(role="user", content=o.str("input"))]
    return [_item(i) for i in objects(o.list("input", required=True, min_items=1, max_items=MAX_ITEMS))]


def _item(i: Obj) -> StoredMessage | Reference:
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
        content, image_parts = common.content(i, "content", TEXT_PARTS, IMAGE_PARTS, common.text_only)
        return StoredMessage(
            id=item_id or new_id("msg_"), role="system" if role == "developer" else role, content=content, images=image_parts
        )
    if kind in CALL_TYPES:
        call = responses_tools.call_of(i, kind)
        return StoredMessage(id=item_id or new_id("ctc_" if call.custom else "fc_"), role="assistant", content=None, tool_calls=[call])
    if kind in OUTPUT_TYPES:
        # a local shell's output names its call by ``id``; a shell call's output is a list of command outcomes
        call_id = i.str("id" if kind == "local_shell_call_output" else "call_id", required=True, max_len=256)
        pictures: list = []  # a tool's output may show images (Codex's view_image, MCP tools)
        if kind == "shell_call_output":
            output = _shell_output(i)
        else:
            output, pictures = common.content(i, "output", TEXT_PARTS, IMAGE_PARTS, common.text_only)
        return StoredMessage(id=new_id("fco_") if kind == "local_shell_call_output" else item_id or new_id("fco_"),
                             role="tool", content=output, tool_call_id=call_id, images=pictures)
    if kind == "reasoning":
        text = _text(i, "content", required=False) or _text(i, "summary", required=False)
        return StoredMessage(id=item_id or new_id("rs_"), role="assistant", content=None, reasoning=text or "")
    return Reference(i.str("id", required=True, max_len=256, allow_empty=False), i.param("id"))


@dataclass
class Reference:
    """An ``item_reference`` input item: resolved once the whole request is valid (it reads the store)."""

    id: str
    param: str


def _resolve(store: ConversationStore, items: list[StoredMessage | Reference]) -> list[StoredMessage]:
    """Each reference as the stored item it names: any stored turn's input or output item."""
    return [_referenced(store, i) if isinstance(i, Reference) else i for i in items]


def _referenced(store: ConversationStore, ref: Reference) -> StoredMessage:
    turn = store.turn_with_item(ref.id)
    if turn is not None:
        for n, wire in enumerate((turn.response or {}).get("output", [])):  # as the client saw it
            if wire.get("id") == ref.id:
                return _item(Obj(wire, f"{turn.id}.output[{n}]"))
        for message in turn.input + turn.output:
            if message.id == ref.id:
                return message
    raise InvalidRequest(f"Item with id {ref.id!r} not found.", param=ref.param, code="item_not_found")


def _shell_output(i: Obj) -> str:
    """A ``shell_call_output``'s outcomes as one text: each command's stdout, then its stderr."""
    texts = []
    for part in objects(i.list("output", required=True)):
        texts += [t for t in (part.str("stdout"), part.str("stderr")) if t]
    return "\n".join(texts)


def _input_image(part: Obj) -> ImageInput:
    """``{"type": "input_image", "image_url": ..., "detail": ...}``; a ``file_id`` needs the Files API."""
    part.str("detail", choices=("auto", "low", "high"))
    if part.has("file_id") and not part.has("image_url"):
        raise InvalidRequest("'file_id' images are not supported by this server: send 'image_url'.", param=part.param("file_id"))
    return images.from_url(part.str("image_url", required=True, allow_empty=False), part.param("image_url"))


IMAGE_PARTS = {"input_image": _input_image}


def _text(i: Obj, key: str, *, required: bool = True) -> str | None:
    return common.text(i, key, TEXT_PARTS, common.text_only, required=required)


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


def _text_format(o: Obj) -> tuple[Grammar | None, dict[str, Any]]:
    """``text.format`` as a constraint (``json_object``, ``json_schema``), and as the response echoes it."""
    text = o.obj("text")
    fmt = text.obj("format") if text is not None else None
    if fmt is None:
        return None, {"type": "text"}
    kind = fmt.str("type", required=True, choices=("text", "json_object", "json_schema"))
    if kind == "text":
        return None, {"type": "text"}
    if kind == "json_object":
        return Grammar("json", param=fmt.param("type")), {"type": "json_object"}
    name = fmt.str("name", required=True, max_len=64, allow_empty=False)
    grammar = common.json_schema(fmt)
    echo = {"type": "json_schema", "name": name, "schema": grammar.schema, "strict": fmt.bool("strict", default=False)}
    if (description := fmt.str("description")) is not None:
        echo["description"] = description
    return grammar, echo


def _metadata(o: Obj) -> dict[str, str]:
    meta = o.obj("metadata")
    if meta is None:
        return {}
    if len(meta.data) > MAX_METADATA_KEYS:
        raise InvalidRequest(f"'metadata' can have at most {MAX_METADATA_KEYS} keys.", param="metadata")
    return {key: meta.str(key, max_len=512) for key in meta.data if meta.raw(key) is not None}

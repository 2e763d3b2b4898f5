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
from mlxcli.core.request import ChatRequest, Grammar, ImageInput, Message, Sampling, ToolCall, new_id, now
from mlxcli.server import images
from mlxcli.server.providers import common
from mlxcli.server.providers.openai import tools
from mlxcli.server.providers.openai.response_object import ResponsesStreamEncoder, ResponseState, replay
from mlxcli.server.validate import Obj, objects
from mlxcli.store import ConversationStore, StoredMessage, Turn
from mlxcli.store.records import answer_message

MAX_ITEMS = 4096
MAX_METADATA_KEYS = 16
INPUT_ROLES = ("user", "system", "developer", "assistant")
TEXT_PARTS = {kind: "text" for kind in ("input_text", "output_text", "text", "summary_text", "reasoning_text")} | {"refusal": "refusal"}
ITEM_TYPES = (
    "message", "function_call", "function_call_output", "custom_tool_call", "custom_tool_call_output", "reasoning", "item_reference",
)


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
        answer.tool_calls = [  # with the call ids the client saw
            ToolCall(id=i["call_id"], name=i["name"], arguments=i.get("arguments", i.get("input", "")), custom="input" in i)
            for i in response["output"]
            if i["type"] in ("function_call", "custom_tool_call")
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


def parse(body: dict[str, Any], store: ConversationStore) -> ResponsesCall:
    """Raises InvalidRequest naming the parameter; only a valid request reads the store."""
    o = Obj(body)
    model = common.model_name(o)
    input_messages = _input(o)
    instructions = o.str("instructions")
    previous_id = o.str("previous_response_id", max_len=256)

    if o.int("top_logprobs", lo=0, hi=20):
        raise InvalidRequest("'top_logprobs' is not supported by this server.", param="top_logprobs")
    sampling = Sampling(**common.sampling_fields(o, ("temperature", "top_p")), max_tokens=common.max_tokens(o, "max_output_tokens"))
    response_format, text_format = _text_format(o)
    tool_fields = tools.tool_fields(o, nested=False)
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
    )
    messages: list[Message] = [Message(role="system", content=instructions)] if instructions else []
    messages += merge_assistant_runs(_history(store, previous_id) + input_messages)
    request = ChatRequest(
        messages, sampling, model, reasoning=tools.neutral_effort(reasoning["effort"]), response_format=response_format, **tool_fields
    )
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
        content, image_parts = common.content(i, "content", TEXT_PARTS, IMAGE_PARTS, common.text_only)
        return StoredMessage(
            id=item_id or new_id("msg_"), role="system" if role == "developer" else role, content=content, images=image_parts
        )
    if kind in ("function_call", "custom_tool_call"):
        custom = kind == "custom_tool_call"
        call = ToolCall(
            id=i.str("call_id", required=True, max_len=256),
            name=i.str("name", required=True, max_len=64),
            arguments=i.str("input" if custom else "arguments", required=True),
            custom=custom,
        )
        return StoredMessage(id=item_id or new_id("ctc_" if custom else "fc_"), role="assistant", content=None, tool_calls=[call])
    if kind in ("function_call_output", "custom_tool_call_output"):
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

"""OpenAI Chat Completions: request parsing and response/stream encoding (wire-formats §1)."""

from __future__ import annotations

import re
from typing import Any, Iterable

from mlxcli.core.collect import Completion
from mlxcli.core.errors import InvalidRequest, MlxcliError
from mlxcli.core.events import Event, Finish, ReasoningDelta, TextDelta, ToolCallDelta, Usage
from mlxcli.core.request import ChatRequest, Message, Sampling, ToolCall, ToolSpec, new_id, now
from mlxcli.server.errors import openai_body
from mlxcli.server.sse import data_frame
from mlxcli.server.validate import Obj, objects
from mlxcli.store import Turn

ROLES = ("system", "developer", "user", "assistant", "tool")
TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
MAX_MESSAGES = 4096
MAX_PARTS = 1024
MAX_TOOLS = 128
MAX_STOP = 16
MAX_STOP_LEN = 256
MAX_ID = 256
MAX_TOKENS = 2**31 - 1  # the engine caps it at the room left in the context window
MAX_TEMPLATE_KWARGS = 32
# apply_chat_template's own parameters: a request must not replace the template, the messages or
# the tokenization through chat_template_kwargs.
RESERVED_TEMPLATE_KWARGS = frozenset({
    "conversation", "messages", "tools", "documents", "chat_template", "add_generation_prompt",
    "continue_final_message", "tokenize", "padding", "truncation", "max_length", "return_tensors",
    "return_dict", "return_assistant_tokens_mask", "tokenizer_kwargs",
})
TEXT_PARTS = ("text", "input_text", "output_text")
FINGERPRINT = "fp_mlxcli"


# ---- request ---------------------------------------------------------------


def parse(body: dict[str, Any]) -> tuple[ChatRequest, dict[str, Any]]:
    """Body → (ChatRequest, options for the encoder). Raises InvalidRequest naming the parameter."""
    o = Obj(body)
    model = o.str("model", max_len=256, printable=True)  # echoed back; never a path (see README, Security)
    messages = [_message(m) for m in objects(o.list("messages", required=True, min_items=1, max_items=MAX_MESSAGES))]

    stream = o.bool("stream", default=False)
    stream_options = o.obj("stream_options")
    if stream_options is not None and not stream:
        raise InvalidRequest("'stream_options' is only allowed when 'stream' is true.", param="stream_options")
    include_usage = bool(stream_options and stream_options.bool("include_usage", default=False))

    n = o.int("n", lo=1, hi=1, default=1)  # one choice per request; see README
    if o.bool("logprobs", default=False):
        raise InvalidRequest("'logprobs' is not supported by this server.", param="logprobs")
    o.int("top_logprobs", lo=0, hi=20)
    _check_passive_fields(o)

    max_tokens = o.int("max_completion_tokens", lo=1, hi=MAX_TOKENS)
    if max_tokens is None:
        max_tokens = o.int("max_tokens", lo=1, hi=MAX_TOKENS)
    seed = o.int("seed", lo=-(2**63), hi=2**64 - 1)
    sampling = Sampling(
        temperature=o.num("temperature", lo=0, hi=2),
        top_p=o.num("top_p", lo=0, hi=1),
        top_k=o.int("top_k", lo=0, hi=MAX_TOKENS),
        min_p=o.num("min_p", lo=0, hi=1),
        seed=None if seed is None else seed % 2**64,  # int64 seeds as the unsigned value MLX takes
        repetition_penalty=o.num("repetition_penalty", lo=0.01, hi=10),
        presence_penalty=o.num("presence_penalty", lo=-2, hi=2),
        frequency_penalty=o.num("frequency_penalty", lo=-2, hi=2),
        max_tokens=max_tokens,
        stop=o.str_or_list("stop", max_items=MAX_STOP, max_len=MAX_STOP_LEN),
    )

    response_format = o.obj("response_format")
    if response_format is not None:
        kind = response_format.str("type", required=True, choices=("text", "json_object", "json_schema"))
        if kind != "text":
            raise InvalidRequest(f"response_format {kind!r} is not supported by this server.", param="response_format")

    tools = [_tool(t) for t in objects(o.list("tools", max_items=MAX_TOOLS))]
    tool_choice, tools = _tool_choice(o, tools)
    template_kwargs = _template_kwargs(o)
    effort = o.str("reasoning_effort", choices=("none", "minimal", "low", "medium", "high", "xhigh", "max"))
    if effort is not None:
        template_kwargs.setdefault("reasoning_effort", effort)

    request = ChatRequest(
        messages=messages,
        sampling=sampling,
        model=model,
        tools=tools,
        tool_choice=tool_choice,
        parallel_tool_calls=o.bool("parallel_tool_calls", default=True),
        template_kwargs=template_kwargs,
    )
    # store None (not said): the server's --store-chat decides.
    options = {"stream": stream, "include_usage": include_usage, "n": n, "id": new_id("chatcmpl-"), "store": o.bool("store")}
    return request, options


def _check_passive_fields(o: Obj) -> None:
    """Fields that change nothing here, or that we refuse: still checked, so nothing passes unchecked."""
    o.unsupported("logit_bias")
    o.unsupported("audio", "is not supported by this server (text only)")
    for item, path in o.list("modalities", max_items=2):
        if item != "text":
            raise InvalidRequest(f"Invalid value for '{path}': this server answers with text only.", param=path, code="invalid_value")
    o.unsupported("functions", "is the deprecated form of 'tools'; send 'tools' instead")
    o.unsupported("function_call", "is the deprecated form of 'tool_choice'; send 'tool_choice' instead")
    o.bool("store")
    o.str_map("metadata", max_items=16, max_key_len=64, max_value_len=512)
    for key in ("user", "safety_identifier", "prompt_cache_key", "service_tier"):
        o.str(key, max_len=MAX_ID)
    o.str("verbosity", choices=("low", "medium", "high"))


def _template_kwargs(o: Obj) -> dict[str, Any]:
    kwargs = o.obj("chat_template_kwargs", max_keys=MAX_TEMPLATE_KWARGS)
    if kwargs is None:
        return {}
    reserved = sorted(RESERVED_TEMPLATE_KWARGS & kwargs.data.keys())
    if reserved:
        raise InvalidRequest(
            f"Invalid value for '{kwargs.param(reserved[0])}': {reserved[0]!r} cannot be set through chat_template_kwargs.",
            param=kwargs.param(reserved[0]),
            code="invalid_value",
        )
    return dict(kwargs.data)


def _message(m: Obj) -> Message:
    role = m.str("role", required=True, choices=ROLES)
    role = "system" if role == "developer" else role
    content = _content(m, allow_null=role == "assistant")
    message = Message(role=role, content=content, name=m.str("name", max_len=256))
    if role == "assistant":
        message.reasoning = m.str("reasoning_content")  # a client echoing our earlier reasoning back
        for call in objects(m.list("tool_calls", max_items=MAX_TOOLS)):
            call.str("type", choices=("function",))
            function = call.obj("function", required=True)
            message.tool_calls.append(
                ToolCall(
                    id=call.str("id", default="", max_len=MAX_ID) or new_id("call_"),
                    name=function.str("name", required=True, max_len=64),
                    arguments=function.str("arguments", default="{}"),
                )
            )
        if content is None and not message.tool_calls:
            message.content = ""
    if role == "tool":
        message.tool_call_id = m.str("tool_call_id", required=True, max_len=256)
    return message


def _content(m: Obj, *, allow_null: bool) -> str | None:
    value = m.raw("content")
    if value is None:
        if allow_null:
            return None
        raise InvalidRequest(f"Missing required parameter: '{m.param('content')}'.", param=m.param("content"), code="missing_required_parameter")
    if isinstance(value, str):
        return m.str("content")
    texts = []
    for part in objects(m.list("content", max_items=MAX_PARTS)):
        kind = part.str("type", required=True)
        if kind in TEXT_PARTS or kind == "refusal":
            texts.append(part.str("text" if kind != "refusal" else "refusal", required=True))
        else:
            raise InvalidRequest(
                f"Content part type {kind!r} is not supported by this model (text only).", param=part.param("type")
            )
    return "\n".join(texts)


def _tool(t: Obj) -> ToolSpec:
    t.str("type", required=True, choices=("function",))
    function = t.obj("function", required=True)
    name = function.str("name", required=True)
    if not TOOL_NAME.match(name):
        raise InvalidRequest(
            f"Invalid value for '{function.param('name')}': must match ^[a-zA-Z0-9_-]{{1,64}}$.", param=function.param("name")
        )
    parameters = function.obj("parameters")
    function.bool("strict")
    return ToolSpec(
        name=name,
        description=function.str("description"),
        parameters=parameters.data if parameters else {"type": "object", "properties": {}},
    )


def _tool_choice(o: Obj, tools: list[ToolSpec]) -> tuple[str | dict[str, Any], list[ToolSpec]]:
    """(the neutral tool_choice, the tools the model may call: ``allowed_tools`` narrows them)."""
    value = o.raw("tool_choice")
    if value is None:
        return ("auto" if tools else "none"), tools
    if isinstance(value, str):
        return o.str("tool_choice", choices=("none", "auto", "required")), tools
    choice = o.obj("tool_choice")
    kind = choice.str("type", required=True, choices=("function", "allowed_tools"))
    if kind == "function":
        name = choice.obj("function", required=True).str("name", required=True)
        if name not in {t.name for t in tools}:
            raise InvalidRequest(f"tool_choice names {name!r}, which is not in 'tools'.", param="tool_choice")
        return {"name": name}, tools
    allowed = choice.obj("allowed_tools", required=True)
    mode = allowed.str("mode", default="auto", choices=("auto", "required"))
    items = objects(allowed.list("tools", required=True, max_items=MAX_TOOLS))
    return mode, allowed_tools(tools, [t.obj("function", required=True) for t in items])


def allowed_tools(tools: list[ToolSpec], refs: list[Obj]) -> list[ToolSpec]:
    """The tools an ``allowed_tools`` choice names (``refs``: objects with a ``name``), in ``tools`` order."""
    known = {t.name for t in tools}
    names = set()
    for ref in refs:
        name = ref.str("name", required=True)
        if name not in known:
            raise InvalidRequest(f"allowed_tools names {name!r}, which is not in 'tools'.", param=ref.param("name"))
        names.add(name)
    return [t for t in tools if t.name in names]


# ---- response --------------------------------------------------------------

FINISH_REASONS = {"stop": "stop", "length": "length", "tool_calls": "tool_calls", "cancelled": "stop"}


def usage_json(usage: Usage) -> dict[str, Any]:
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cached_tokens},
        "completion_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
    }


def tool_calls_json(calls: list[ToolCall]) -> list[dict[str, Any]]:
    return [{"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}} for c in calls]


def completion_json(completion: Completion, model: str, id: str | None = None) -> dict[str, Any]:
    finish = completion.finish or Finish("stop")
    message: dict[str, Any] = {
        "role": "assistant",
        "content": completion.text if (completion.text or not completion.tool_calls) else None,
        "refusal": None,
    }
    if completion.reasoning:
        message["reasoning_content"] = completion.reasoning
    if completion.tool_calls:
        message["tool_calls"] = tool_calls_json(completion.tool_calls)
    return {
        "id": id or new_id("chatcmpl-"),
        "object": "chat.completion",
        "created": now(),
        "model": model,
        "system_fingerprint": FINGERPRINT,
        "choices": [
            {"index": 0, "message": message, "logprobs": None, "finish_reason": FINISH_REASONS[finish.reason]}
        ],
        "usage": usage_json(finish.usage),
    }


class ChatStreamEncoder:
    """Chunks per §1.4: role once, a finish chunk, optional usage chunk, ``[DONE]``."""

    def __init__(self, model: str, include_usage: bool, id: str | None = None):
        self.id = id or new_id("chatcmpl-")
        self.created = now()
        self.model = model
        self.include_usage = include_usage

    def _chunk(self, delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
        chunk: dict[str, Any] = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": FINGERPRINT,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
        }
        if self.include_usage:
            chunk["usage"] = None
        return data_frame(chunk)

    def start(self) -> Iterable[bytes]:
        yield self._chunk({"role": "assistant", "content": ""})

    def event(self, event: Event) -> Iterable[bytes]:
        if isinstance(event, TextDelta):
            yield self._chunk({"content": event.text})
        elif isinstance(event, ReasoningDelta):
            yield self._chunk({"reasoning_content": event.text})
        elif isinstance(event, ToolCallDelta):
            call: dict[str, Any] = {"index": event.index, "function": {"arguments": event.arguments}}
            if event.name is not None:
                call.update(id=event.id, type="function")
                call["function"]["name"] = event.name
            yield self._chunk({"tool_calls": [call]})
        elif isinstance(event, Finish):
            yield self._chunk({}, FINISH_REASONS[event.reason])
            if self.include_usage:
                yield data_frame(
                    {
                        "id": self.id,
                        "object": "chat.completion.chunk",
                        "created": self.created,
                        "model": self.model,
                        "system_fingerprint": FINGERPRINT,
                        "choices": [],
                        "usage": usage_json(event.usage),
                    }
                )
            yield b"data: [DONE]\n\n"

    def error(self, err: MlxcliError) -> Iterable[bytes]:
        yield data_frame(openai_body(err))  # the SDK raises APIError on it; then we close


class Provider:
    """The OpenAI Chat Completions protocol, as the generic resource uses it."""

    name = "openai"
    parse = staticmethod(parse)

    @staticmethod
    def response(completion: Completion, model: str, options: dict[str, Any]) -> dict[str, Any]:
        return completion_json(completion, model, options["id"])

    @staticmethod
    def stream_encoder(model: str, options: dict[str, Any]) -> ChatStreamEncoder:
        return ChatStreamEncoder(model, options["include_usage"], options["id"])

    @staticmethod
    def turn(request: ChatRequest, completion: Completion, model: str, options: dict[str, Any]) -> Turn:
        # Stateless: every request carries the whole conversation, so it is a conversation of its own.
        return Turn.from_exchange(options["id"], "chat.completions", model, request.messages, completion)

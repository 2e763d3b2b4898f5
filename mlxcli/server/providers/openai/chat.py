"""OpenAI Chat Completions: request parsing and response/stream encoding (wire-formats §1)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

from mlxcli.core.collect import Completion
from mlxcli.core.errors import InvalidRequest, MlxcliError
from mlxcli.core.events import Event, Finish, ReasoningDelta, TextDelta, TokenLogprob, ToolCallDelta, Usage
from mlxcli.core.request import ChatRequest, Grammar, ImageInput, Message, Sampling, ToolCall, new_id, now
from mlxcli.server import images
from mlxcli.server.framing import sse_data
from mlxcli.server.providers import common
from mlxcli.server.providers.openai import tools
from mlxcli.server.providers.openai.errors import error_body
from mlxcli.server.validate import Obj, objects
from mlxcli.store import Turn

ROLES = ("system", "developer", "user", "assistant", "tool")
MAX_MESSAGES = 4096
MAX_ID = 256
MAX_TEMPLATE_KWARGS = 32
# apply_chat_template's own parameters: a request must not replace the template, the messages or
# the tokenization through chat_template_kwargs.
RESERVED_TEMPLATE_KWARGS = frozenset({
    "conversation", "messages", "tools", "documents", "chat_template", "add_generation_prompt",
    "continue_final_message", "tokenize", "padding", "truncation", "max_length", "return_tensors",
    "return_dict", "return_assistant_tokens_mask", "tokenizer_kwargs",
})
TEXT_PARTS = {"text": "text", "input_text": "text", "output_text": "text", "refusal": "refusal"}


def _image_url(part: Obj) -> ImageInput:
    """``{"type": "image_url", "image_url": {"url": ..., "detail": ...}}``; ``detail`` is accepted, not used."""
    image = part.obj("image_url", required=True)
    image.str("detail", choices=("auto", "low", "high"))
    return images.from_url(image.str("url", required=True, allow_empty=False), image.param("url"))


IMAGE_PARTS = {"image_url": _image_url}
SAMPLING = ("temperature", "top_p", "top_k", "min_p", "repetition_penalty", "presence_penalty", "frequency_penalty")
FINGERPRINT = "fp_mlxcli"


@dataclass
class ChatCall:
    """One Chat Completions request: the neutral request and how to answer it."""

    request: ChatRequest
    stream: bool
    include_usage: bool
    id: str
    store: bool | None

    def response(self, completion: Completion, model: str) -> dict[str, Any]:
        body = completion_json(completion, model, self.id)
        if self.request.logprobs is not None:
            body["choices"][0]["logprobs"] = logprobs_json(completion.logprobs)
        return body

    def encoder(self, model: str, prompt_tokens: int) -> "ChatStreamEncoder":
        return ChatStreamEncoder(model, self.include_usage, self.id, logprobs=self.request.logprobs is not None)

    def turn(self, completion: Completion, model: str) -> Turn:
        # Stateless: every request carries the whole conversation, so it is a conversation of its own.
        return Turn.from_exchange(self.id, "chat.completions", model, self.request.messages, completion)


# ---- request ---------------------------------------------------------------


def parse(body: dict[str, Any]) -> ChatCall:
    """Raises InvalidRequest naming the parameter."""
    o = Obj(body)
    model = common.model_name(o)
    messages = [_message(m) for m in objects(o.list("messages", required=True, min_items=1, max_items=MAX_MESSAGES))]

    stream = o.bool("stream", default=False)
    stream_options = o.obj("stream_options")
    if stream_options is not None and not stream:
        raise InvalidRequest("'stream_options' is only allowed when 'stream' is true.", param="stream_options")
    include_usage = bool(stream_options and stream_options.bool("include_usage", default=False))

    o.int("n", lo=1, hi=1, default=1)  # one choice per request; see README
    logprobs = o.bool("logprobs", default=False)
    top_logprobs = o.int("top_logprobs", lo=0, hi=20)
    if top_logprobs is not None and not logprobs:
        raise InvalidRequest("'top_logprobs' needs 'logprobs': true.", param="top_logprobs")
    _check_passive_fields(o)

    limit = common.max_tokens(o, "max_completion_tokens")
    seed = o.int("seed", lo=-(2**63), hi=2**64 - 1)
    sampling = Sampling(
        **common.sampling_fields(o, SAMPLING),
        seed=None if seed is None else seed % 2**64,  # int64 seeds as the unsigned value MLX takes
        max_tokens=limit if limit is not None else common.max_tokens(o, "max_tokens"),
        stop=common.stop(o, "stop"),
    )

    template_kwargs = _template_kwargs(o)
    # The template still gets a client's own reasoning_effort kwarg as it is; other templates get it mapped.
    effort = tools.effort(o) or tools.neutral_effort(template_kwargs.get("reasoning_effort"))

    request = ChatRequest(
        messages,
        sampling,
        model,
        reasoning=effort,
        template_kwargs=template_kwargs,
        response_format=_response_format(o),
        logprobs=(top_logprobs or 0) if logprobs else None,
        **tools.tool_fields(o, tools.chat_tools(o), nested=True),
    )
    return ChatCall(request, stream=stream, include_usage=include_usage, id=new_id("chatcmpl-"), store=o.bool("store"))


def _response_format(o: Obj) -> Grammar | None:
    """``response_format``: ``text`` (free), ``json_object`` (any JSON object) or ``json_schema``."""
    fmt = o.obj("response_format")
    if fmt is None:
        return None
    kind = fmt.str("type", required=True, choices=("text", "json_object", "json_schema"))
    if kind == "text":
        return None
    if kind == "json_object":
        return Grammar("json", param="response_format")
    spec = fmt.obj("json_schema", required=True)
    spec.str("name", required=True, max_len=64, allow_empty=False)
    spec.str("description")
    spec.bool("strict")
    return common.json_schema(spec, required=False)


def _check_passive_fields(o: Obj) -> None:
    """Fields that change nothing here, or that we refuse: still checked, so nothing passes unchecked."""
    o.unsupported("logit_bias")
    o.unsupported("audio", "is not supported by this server (text only)")
    for item, path in o.list("modalities", max_items=2):
        if item != "text":
            raise InvalidRequest(f"Invalid value for '{path}': this server answers with text only.", param=path, code="invalid_value")
    o.unsupported("functions", "is the deprecated form of 'tools'; send 'tools' instead")
    o.unsupported("function_call", "is the deprecated form of 'tool_choice'; send 'tool_choice' instead")
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
    content, image_parts = common.content(m, "content", TEXT_PARTS, IMAGE_PARTS, common.text_only, required=role != "assistant")
    message = Message(role=role, content=content, name=m.str("name", max_len=256), images=image_parts)
    if role == "assistant":
        message.reasoning = m.str("reasoning_content")  # a client echoing our earlier reasoning back
        for call in objects(m.list("tool_calls", max_items=tools.MAX_TOOLS)):
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


def logprobs_json(tokens: list[TokenLogprob]) -> dict[str, Any]:
    """A choice's ``logprobs``: every generated token (reasoning and tool-call markup included) with its alternatives."""

    def entry(token: str, logprob: float) -> dict[str, Any]:
        return {"token": token, "logprob": logprob, "bytes": list(token.encode())}

    content = [{**entry(t.token, t.logprob), "top_logprobs": [entry(*alt) for alt in t.top]} for t in tokens]
    return {"content": content, "refusal": None}


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

    def __init__(self, model: str, include_usage: bool, id: str | None = None, *, logprobs: bool = False):
        self.id = id or new_id("chatcmpl-")
        self.created = now()
        self.model = model
        self.include_usage = include_usage
        self.logprobs = logprobs
        self.pending: list[TokenLogprob] = []  # logprobs of tokens whose text is not out yet: on the next chunk

    def _chunk(self, delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
        logprobs = logprobs_json(self.pending) if self.logprobs and self.pending else None
        self.pending = []
        chunk: dict[str, Any] = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": FINGERPRINT,
            "choices": [{"index": 0, "delta": delta, "logprobs": logprobs, "finish_reason": finish_reason}],
        }
        if self.include_usage:
            chunk["usage"] = None
        return sse_data(chunk)

    def start(self) -> Iterable[bytes]:
        yield self._chunk({"role": "assistant", "content": ""})

    def event(self, event: Event) -> Iterable[bytes]:
        if isinstance(event, TokenLogprob):
            self.pending.append(event)
        elif isinstance(event, TextDelta):
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
                yield sse_data(
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
        yield sse_data(error_body(err))  # the SDK raises APIError on it; then we close

"""Anthropic Messages: request parsing, response and stream encoding (wire-formats §3)."""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any, Iterable

from mlxcli.core.collect import Completion
from mlxcli.core.errors import InvalidRequest, MlxcliError
from mlxcli.core.events import Event, Finish, ReasoningDelta, TextDelta, ToolCallDelta, Usage
from mlxcli.core.request import ChatRequest, Message, Sampling, ToolCall, ToolSpec, new_id
from mlxcli.store import Turn
from mlxcli.server.errors import anthropic_body
from mlxcli.server.sse import event_frame
from mlxcli.server.validate import Obj, objects

TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,128}$")
MAX_MESSAGES = 4096
MAX_BLOCKS = 4096
MAX_TOOLS = 512  # agents such as Claude Code send many tools (MCP servers included)
MAX_STOP = 16
MAX_STOP_LEN = 256


# ---- request ---------------------------------------------------------------


def parse(body: dict[str, Any]) -> tuple[ChatRequest, dict[str, Any]]:
    """A Messages request → (ChatRequest, options for the encoder). Raises InvalidRequest naming the parameter."""
    o = Obj(body)
    request = parse_prompt(o)
    max_tokens = o.int("max_tokens", required=True, lo=1)
    request.sampling = Sampling(
        temperature=o.num("temperature", lo=0, hi=1),
        top_p=o.num("top_p", lo=0, hi=1),
        top_k=o.int("top_k", lo=0),
        max_tokens=max_tokens,
        stop=o.str_or_list("stop_sequences", max_items=MAX_STOP, max_len=MAX_STOP_LEN),
    )
    metadata = o.obj("metadata")
    if metadata is not None:
        metadata.str("user_id")
    # Anthropic has no `store` field: only the server's --store-chat stores these exchanges.
    return request, {"stream": o.bool("stream", default=False), "id": new_id("msg_"), "store": None}


def parse_prompt(o: Obj) -> ChatRequest:
    """What decides the prompt: model, system, messages, tools, tool_choice, thinking (shared with count_tokens)."""
    model = o.str("model", required=True, max_len=256, allow_empty=False)
    messages: list[Message] = []
    system = _system(o)
    if system:
        messages.append(Message(role="system", content=system))
    for m in objects(o.list("messages", required=True, min_items=1, max_items=MAX_MESSAGES)):
        messages.extend(_messages(m))
    tools = [tool for tool in map(_tool, objects(o.list("tools", max_items=MAX_TOOLS))) if tool is not None]
    tool_choice, parallel = _tool_choice(o, tools)
    return ChatRequest(
        messages=messages,
        model=model,
        tools=tools,
        tool_choice=tool_choice,
        parallel_tool_calls=parallel,
        template_kwargs=_thinking(o),
    )


def _system(o: Obj) -> str | None:
    if isinstance(o.raw("system"), list):
        return "\n".join(_text_blocks(o, "system"))
    return o.str("system")


def _text_blocks(o: Obj, key: str) -> list[str]:
    """Text of a list of blocks that may only hold text (``system``, ``tool_result.content``)."""
    texts = []
    for block in objects(o.list(key, max_items=MAX_BLOCKS)):
        kind = block.str("type", required=True)
        if kind != "text":
            raise _unsupported_block(block, kind)
        texts.append(block.str("text", required=True))
    return texts


def _unsupported_block(block: Obj, kind: str) -> InvalidRequest:
    return InvalidRequest(
        f"Content block type {kind!r} is not supported by this model (text, tool_use, tool_result and thinking only).",
        param=block.param("type"),
    )


def _messages(m: Obj) -> list[Message]:
    """One Anthropic message → neutral messages: a user turn's ``tool_result`` blocks become ``tool`` messages.

    Claude Code also sends ``system`` messages mid-conversation (per-turn instructions): kept in place.
    """
    role = m.str("role", required=True, choices=("user", "assistant", "system"))
    content = m.raw("content")
    if content is None:
        raise InvalidRequest(
            f"Missing required parameter: '{m.param('content')}'.", param=m.param("content"), code="missing_required_parameter"
        )
    if isinstance(content, str):
        return [Message(role=role, content=m.str("content"))]
    if role == "system":
        return [Message(role="system", content="\n".join(_text_blocks(m, "content")))]
    blocks = list(objects(m.list("content", max_items=MAX_BLOCKS)))
    return _assistant_blocks(blocks) if role == "assistant" else _user_blocks(blocks)


def _assistant_blocks(blocks: list[Obj]) -> list[Message]:
    message = Message(role="assistant", content="")
    texts, thoughts = [], []
    for block in blocks:
        kind = block.str("type", required=True)
        if kind == "text":
            texts.append(block.str("text", required=True))
        elif kind == "tool_use":
            message.tool_calls.append(
                ToolCall(
                    id=block.str("id", required=True, max_len=256),
                    name=block.str("name", required=True, max_len=256),
                    arguments=json.dumps(block.obj("input", required=True).data),
                )
            )
        elif kind == "thinking":  # a client echoing our earlier reasoning back
            thoughts.append(block.str("thinking", required=True))
        elif kind == "redacted_thinking":
            block.str("data", required=True)
        else:
            raise _unsupported_block(block, kind)
    message.content = "".join(texts)
    message.reasoning = "".join(thoughts) or None
    return [message]


def _user_blocks(blocks: list[Obj]) -> list[Message]:
    """Runs of text blocks become user messages; each tool_result a tool message, in order."""
    out: list[Message] = []
    texts: list[str] = []

    def flush() -> None:
        if texts:
            out.append(Message(role="user", content="\n".join(texts)))
            texts.clear()

    for block in blocks:
        kind = block.str("type", required=True)
        if kind == "text":
            texts.append(block.str("text", required=True))
        elif kind == "tool_result":
            flush()
            tool_use_id = block.str("tool_use_id", required=True, max_len=256)
            block.bool("is_error")
            if isinstance(block.raw("content"), list):
                result = "\n".join(_text_blocks(block, "content"))
            else:
                result = block.str("content", default="")
            out.append(Message(role="tool", content=result, tool_call_id=tool_use_id))
        else:
            raise _unsupported_block(block, kind)
    flush()
    return out or [Message(role="user", content="")]


def _tool(t: Obj) -> ToolSpec | None:
    """A client tool → ToolSpec. Anthropic-hosted server tools (web search, ...) cannot run here: left out."""
    kind = t.str("type")
    if kind not in (None, "custom"):
        return None
    name = t.str("name", required=True)
    if not TOOL_NAME.match(name):
        raise InvalidRequest(f"Invalid value for '{t.param('name')}': must match ^[a-zA-Z0-9_-]{{1,128}}$.", param=t.param("name"))
    schema = t.obj("input_schema", required=True)
    return ToolSpec(name=name, description=t.str("description"), parameters=schema.data)


def _tool_choice(o: Obj, tools: list[ToolSpec]) -> tuple[str | dict[str, Any], bool]:
    """(the neutral tool_choice, whether several calls are allowed in one answer)."""
    choice = o.obj("tool_choice")
    if choice is None:
        return ("auto" if tools else "none"), True
    kind = choice.str("type", required=True, choices=("auto", "any", "tool", "none"))
    parallel = not choice.bool("disable_parallel_tool_use", default=False)
    if kind == "tool":
        name = choice.str("name", required=True)
        if name not in {t.name for t in tools}:
            raise InvalidRequest(f"tool_choice names {name!r}, which is not in 'tools'.", param=choice.param("name"))
        return {"name": name}, parallel
    return {"auto": "auto", "any": "required", "none": "none"}[kind], parallel


def _thinking(o: Obj) -> dict[str, Any]:
    """``thinking`` → the chat template's reasoning switch (templates without one ignore it)."""
    thinking = o.obj("thinking")
    if thinking is None:
        return {}
    kind = thinking.str("type", required=True)  # enabled | disabled | adaptive | ...: new kinds keep working
    thinking.int("budget_tokens", lo=0)
    return {"enable_thinking": kind != "disabled"}


def parse_count(body: dict[str, Any]) -> ChatRequest:
    """A count_tokens request: the prompt fields of a Messages request, no ``max_tokens``."""
    return parse_prompt(Obj(body))


def count_response(input_tokens: int) -> dict[str, Any]:
    return {"input_tokens": input_tokens}


# ---- response --------------------------------------------------------------


def stop_reason(finish: Finish) -> str:
    if finish.reason == "length":
        return "max_tokens"
    if finish.reason == "tool_calls":
        return "tool_use"
    return "stop_sequence" if finish.stop_sequence is not None else "end_turn"


def usage_json(usage: Usage) -> dict[str, Any]:
    """Anthropic counts cache reads apart from ``input_tokens``."""
    return {
        "input_tokens": usage.prompt_tokens - usage.cached_tokens,
        "output_tokens": usage.completion_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": usage.cached_tokens,
    }


def signature(thinking: str) -> str:
    """Clients echo thinking blocks back with their signature; ours only has to be stable and non-empty."""
    return hashlib.sha256(thinking.encode()).hexdigest()


def tool_use_id(engine_id: str | None) -> str:
    """A ``toolu_`` id; the engine's ``call_X`` becomes ``toolu_X``, so streamed, returned and stored ids agree."""
    if engine_id and engine_id.startswith("toolu_"):
        return engine_id
    if engine_id and engine_id.startswith("call_"):
        return "toolu_" + engine_id.removeprefix("call_")
    return new_id("toolu_")


def tool_input(arguments: str) -> dict[str, Any]:
    """The call's arguments as an object (the tool-call parser guarantees a JSON object)."""
    try:
        value = json.loads(arguments) if arguments.strip() else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def message_json(completion: Completion, model: str, message_id: str) -> dict[str, Any]:
    finish = completion.finish or Finish("stop")
    content: list[dict[str, Any]] = []
    if completion.reasoning:
        content.append({"type": "thinking", "thinking": completion.reasoning, "signature": signature(completion.reasoning)})
    if completion.text or not completion.tool_calls:
        content.append({"type": "text", "text": completion.text})
    for call in completion.tool_calls:
        content.append({"type": "tool_use", "id": tool_use_id(call.id), "name": call.name, "input": tool_input(call.arguments)})
    return {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason(finish),
        "stop_sequence": finish.stop_sequence,
        "usage": usage_json(finish.usage),
    }


class MessageStreamEncoder:
    """Events per §3.4: message_start, ping, one block per run of text / thinking / one tool call,
    message_delta with the cumulative usage, message_stop."""

    def __init__(self, model: str, prompt_tokens: int, message_id: str):
        self.id = message_id
        self.model = model
        self.prompt_tokens = prompt_tokens
        self.index = -1  # index of the open block, or of the last one closed
        self.open: tuple[str, int | None] | None = None  # ("text" | "thinking" | "tool_use", tool index)
        self.thinking: list[str] = []

    @staticmethod
    def _frame(payload: dict[str, Any]) -> bytes:
        return event_frame(payload["type"], payload)

    def start(self) -> Iterable[bytes]:
        yield self._frame(
            {
                "type": "message_start",
                "message": {
                    "id": self.id,
                    "type": "message",
                    "role": "assistant",
                    "model": self.model,
                    "content": [],
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": usage_json(Usage(prompt_tokens=self.prompt_tokens)),
                },
            }
        )
        yield self._frame({"type": "ping"})

    def event(self, event: Event) -> Iterable[bytes]:
        if isinstance(event, TextDelta):
            if self.open != ("text", None):
                yield from self._start(("text", None), {"type": "text", "text": ""})
            yield self._delta({"type": "text_delta", "text": event.text})
        elif isinstance(event, ReasoningDelta):
            if self.open != ("thinking", None):
                yield from self._start(("thinking", None), {"type": "thinking", "thinking": "", "signature": ""})
            self.thinking.append(event.text)
            yield self._delta({"type": "thinking_delta", "thinking": event.text})
        elif isinstance(event, ToolCallDelta):
            if self.open != ("tool_use", event.index):
                block = {"type": "tool_use", "id": tool_use_id(event.id), "name": event.name or "", "input": {}}
                yield from self._start(("tool_use", event.index), block)
            if event.arguments:
                yield self._delta({"type": "input_json_delta", "partial_json": event.arguments})
        elif isinstance(event, Finish):
            if self.index < 0:  # nothing generated: still one (empty) text block, as non-streaming has
                yield from self._start(("text", None), {"type": "text", "text": ""})
            yield from self._close()
            yield self._frame(
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": stop_reason(event), "stop_sequence": event.stop_sequence},
                    "usage": usage_json(event.usage),
                }
            )
            yield self._frame({"type": "message_stop"})

    def _start(self, key: tuple[str, int | None], block: dict[str, Any]) -> Iterable[bytes]:
        """Close the open block, if any, and start ``block``."""
        yield from self._close()
        self.index += 1
        self.open = key
        yield self._frame({"type": "content_block_start", "index": self.index, "content_block": block})

    def _close(self) -> Iterable[bytes]:
        if self.open is None:
            return
        if self.open[0] == "thinking":
            yield self._delta({"type": "signature_delta", "signature": signature("".join(self.thinking))})
            self.thinking = []
        self.open = None
        yield self._frame({"type": "content_block_stop", "index": self.index})

    def _delta(self, delta: dict[str, Any]) -> bytes:
        return self._frame({"type": "content_block_delta", "index": self.index, "delta": delta})

    def error(self, err: MlxcliError) -> Iterable[bytes]:
        yield self._frame(anthropic_body(err))  # the SDK raises on `event: error`; then we close


class Provider:
    """The Anthropic Messages protocol, as the generic resources use it."""

    name = "anthropic"
    parse = staticmethod(parse)
    parse_count = staticmethod(parse_count)
    count_response = staticmethod(count_response)

    @staticmethod
    def response(completion: Completion, model: str, options: dict[str, Any]) -> dict[str, Any]:
        return message_json(completion, model, options["id"])

    @staticmethod
    def stream_encoder(model: str, options: dict[str, Any]) -> MessageStreamEncoder:
        return MessageStreamEncoder(model, options["prompt_tokens"], options["id"])

    @staticmethod
    def turn(request: ChatRequest, completion: Completion, model: str, options: dict[str, Any]) -> Turn:
        # Stateless like Chat Completions: each request carries its whole conversation.
        return Turn.from_exchange(options["id"], "messages", model, request.messages, completion)

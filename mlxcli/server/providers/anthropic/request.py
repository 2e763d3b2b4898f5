"""Anthropic Messages: the request (wire-formats §3.2), and how it is answered and stored."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from mlxcli.core.collect import Completion
from mlxcli.core.errors import InvalidRequest
from mlxcli.core.request import ChatRequest, Effort, Grammar, ImageInput, Message, Sampling, ToolCall, ToolSpec, new_id
from mlxcli.server import images
from mlxcli.server.providers import common
from mlxcli.server.providers.anthropic import claude_code
from mlxcli.server.providers.anthropic.response import MessageStreamEncoder, message_json
from mlxcli.server.validate import Obj, objects
from mlxcli.store import Turn

MAX_MESSAGES = 4096
MAX_BLOCKS = 4096
MAX_TOOLS = 512  # agents such as Claude Code send many tools (MCP servers included)
TEXT_BLOCKS = {"text": "text"}
# Thinking budgets on the neutral effort scale: up to 4k tokens is low, up to 16k medium, beyond high.
BUDGET_EFFORTS = ((4096, "low"), (16384, "medium"))
EFFORTS = ("low", "medium", "high", "xhigh", "max")


@dataclass
class MessagesCall:
    """One Messages request: the neutral request and how to answer it."""

    request: ChatRequest
    stream: bool
    id: str
    store: bool | None = None  # Anthropic has no `store` field: only the server's --store-chat stores these

    def response(self, completion: Completion, model: str) -> dict[str, Any]:
        return message_json(completion, model, self.id)

    def encoder(self, model: str, prompt_tokens: int) -> MessageStreamEncoder:
        return MessageStreamEncoder(model, prompt_tokens, self.id)

    def turn(self, completion: Completion, model: str) -> Turn:
        # Stateless like Chat Completions: each request carries its whole conversation.
        return Turn.from_exchange(self.id, "messages", model, self.request.messages, completion)


def parse(body: dict[str, Any]) -> MessagesCall:
    """Raises InvalidRequest naming the parameter."""
    o = Obj(body)
    request = parse_prompt(o)
    request.response_format = _output_format(o)
    request.sampling = Sampling(
        **common.sampling_fields(o, ("temperature", "top_p", "top_k"), temperature=1),
        max_tokens=common.max_tokens(o, "max_tokens", required=True),
        stop=common.stop(o, "stop_sequences"),
    )
    metadata = o.obj("metadata")
    if metadata is not None:
        metadata.str("user_id")
    return MessagesCall(request, stream=o.bool("stream", default=False), id=new_id("msg_"))


def parse_prompt(o: Obj) -> ChatRequest:
    """What decides the prompt: model, system, messages, tools, tool_choice, thinking (shared with count_tokens)."""
    model = common.model_name(o, required=True)
    messages: list[Message] = []
    # Claude Code's billing header left out, and the parts of its system prompt that change between
    # requests moved to the end of the conversation: the prompt cache can reuse every earlier request.
    system, moved = claude_code.stable_system(_text(o, "system", required=False))
    if system:
        messages.append(Message(role="system", content=system))
    for m in objects(o.list("messages", required=True, min_items=1, max_items=MAX_MESSAGES)):
        messages.extend(_messages(m))
    claude_code.append_context(messages, moved)
    tools = [tool for tool in map(_tool, objects(o.list("tools", max_items=MAX_TOOLS))) if tool is not None]
    tool_choice, parallel = _tool_choice(o, tools)
    return ChatRequest(
        messages=messages,
        model=model,
        tools=tools,
        tool_choice=tool_choice,
        parallel_tool_calls=parallel,
        reasoning=_effort(o),
    )


def _text(o: Obj, key: str, *, required: bool = True) -> str | None:
    """A string, or text blocks (``system``, a ``system`` message, ``tool_result.content``)."""
    return common.text(o, key, TEXT_BLOCKS, _unsupported_block, required=required)


def _unsupported_block(block: Obj, kind: str) -> InvalidRequest:
    return InvalidRequest(
        f"Content block type {kind!r} is not supported by this model (text, image, tool_use, tool_result and thinking only).",
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
    if isinstance(content, str) or role == "system":
        return [Message(role=role, content=_text(m, "content"))]
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
    pictures: list[ImageInput] = []

    def flush() -> None:
        if texts or pictures:
            out.append(Message(role="user", content="\n".join(texts), images=list(pictures)))
            texts.clear()
            pictures.clear()

    for block in blocks:
        kind = block.str("type", required=True)
        if kind == "text":
            texts.append(block.str("text", required=True))
        elif kind == "image":
            pictures.append(_image(block))
            images.check_count(len(pictures), block.param("source"))
        elif kind == "tool_result":
            flush()
            tool_use_id = block.str("tool_use_id", required=True, max_len=256)
            block.bool("is_error")
            # A tool's result may show images (Claude Code's Read of a screenshot).
            result, shown = common.content(block, "content", TEXT_BLOCKS, {"image": _image}, _unsupported_block, required=False)
            images.check_count(len(shown), block.param("content"))
            out.append(Message(role="tool", content=result or "", tool_call_id=tool_use_id, images=shown))
        else:
            raise _unsupported_block(block, kind)
    flush()
    return out or [Message(role="user", content="")]


def _image(block: Obj) -> ImageInput:
    """An ``image`` block: ``source`` ``{"type": "base64", "media_type", "data"}`` or ``{"type": "url", "url"}``."""
    source = block.obj("source", required=True)
    if source.str("type", required=True, choices=("base64", "url")) == "url":
        return images.from_url(source.str("url", required=True, allow_empty=False), source.param("url"))
    media_type = source.str("media_type", required=True)
    return images.from_base64(source.str("data", required=True, allow_empty=False), source.param("data"), media_type)


def _tool(t: Obj) -> ToolSpec | None:
    """A client tool → ToolSpec. Anthropic-hosted server tools (web search, ...) cannot run here: left out."""
    kind = t.str("type")
    if kind not in (None, "custom"):
        return None
    return common.tool(t, schema="input_schema", schema_required=True, max_name=128)


def _tool_choice(o: Obj, tools: list[ToolSpec]) -> tuple[str | dict[str, Any], bool]:
    """(the neutral tool_choice, whether several calls are allowed in one answer)."""
    choice = o.obj("tool_choice")
    if choice is None:
        return ("auto" if tools else "none"), True
    kind = choice.str("type", required=True, choices=("auto", "any", "tool", "none"))
    parallel = not choice.bool("disable_parallel_tool_use", default=False)
    if kind == "tool":
        return common.named_tool(choice.str("name", required=True), tools, choice.param("name")), parallel
    return {"auto": "auto", "any": "required", "none": "none"}[kind], parallel


def _output_format(o: Obj) -> Grammar | None:
    """``output_config.format`` (``{"type": "json_schema", "schema": …}``): the answer is that JSON."""
    config = o.obj("output_config")
    fmt = config.obj("format") if config is not None else None
    if fmt is None:
        return None
    fmt.str("type", required=True, choices=("json_schema",))
    return common.json_schema(fmt)


def _effort(o: Obj) -> Effort | None:
    """``thinking`` and ``output_config.effort`` on the neutral scale: ``disabled`` is off; an explicit
    effort wins over a thinking budget (up to 4k tokens low, up to 16k medium, beyond high);
    ``adaptive`` (and new kinds) leave the model its default."""
    thinking = o.obj("thinking")
    kind = thinking.str("type", required=True) if thinking is not None else None  # enabled | disabled | adaptive | ...
    budget = thinking.int("budget_tokens", lo=0) if thinking is not None else None
    config = o.obj("output_config")
    effort = config.str("effort", choices=EFFORTS) if config is not None else None
    if kind == "disabled":
        return "off"
    if effort is not None:
        return effort
    if kind == "enabled" and budget is not None:
        return next((level for limit, level in BUDGET_EFFORTS if budget <= limit), "high")
    return None

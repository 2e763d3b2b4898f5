"""ChatRequest → chat-template text and tokens."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from mlx_lm.tokenizer_utils import TokenizerWrapper

from mlxcli.core.errors import InvalidRequest
from mlxcli.core.request import ChatRequest, Message


@dataclass
class RenderedPrompt:
    text: str
    tokens: list[int]


def render(tokenizer: TokenizerWrapper, request: ChatRequest) -> RenderedPrompt:
    messages = [_template_message(m) for m in request.messages]
    tools = [_template_tool(t) for t in request.tools] or None
    if tokenizer.has_chat_template:
        try:
            text = tokenizer.apply_chat_template(
                messages,
                tools=tools,
                add_generation_prompt=True,
                tokenize=False,
                **request.template_kwargs,
            )
        except Exception as exc:  # jinja raises TemplateError, TypeError, ... for odd input
            raise InvalidRequest(f"the chat template could not render these messages: {exc}", param="messages") from exc
    else:
        text = _plain_prompt(messages)
    tokens = tokenizer.encode(text, add_special_tokens=False)
    return RenderedPrompt(text=text, tokens=list(tokens))


def _template_message(message: Message) -> dict[str, Any]:
    out: dict[str, Any] = {"role": message.role, "content": message.content or ""}
    if message.name:
        out["name"] = message.name
    if message.tool_calls:
        out["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": _arguments(c.arguments)}}
            for c in message.tool_calls
        ]
    if message.tool_call_id:
        out["tool_call_id"] = message.tool_call_id
    return out


def _arguments(text: str) -> Any:
    # Chat templates expect arguments as a mapping; keep the text if it is not JSON.
    try:
        return json.loads(text)
    except ValueError:
        return text


def _template_tool(tool) -> dict[str, Any]:
    function = {"name": tool.name, "parameters": tool.parameters}
    if tool.description:
        function["description"] = tool.description
    return {"type": "function", "function": function}


def _plain_prompt(messages: list[dict[str, Any]]) -> str:
    """For models without a chat template: a simple role-prefixed transcript."""
    lines = [f"{m['role'].capitalize()}: {m['content']}" for m in messages]
    return "\n\n".join(lines) + "\n\nAssistant:"

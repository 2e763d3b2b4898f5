"""ChatRequest → chat-template text and tokens, and the plan for reading the answer.

Tools, earlier tool calls and tool results reach the model through its chat
template. A template that cannot render tools gets the fallback instead: the
tools are described in the system prompt in the Hermes/Qwen convention
(``<tool_call>{"name": …, "arguments": …}</tool_call>``, parsed back by mlx-lm's
``json_tools`` parser), earlier calls are written into the assistant's text in
that format and tool results become ``<tool_response>`` user messages.

A template that renders one call per assistant message and names each tool result
after the call just before it (gpt-oss's) gets each call as a message of its own,
followed by its result, with the reasoning and any text before the calls as the
first one's reasoning (it takes one or the other). Earlier reasoning reaches the
template in the field it reads (``reasoning_content``, or gpt-oss's ``thinking``);
the template decides which turns' reasoning it shows the model.

``tool_choice`` ``required`` or naming a function is honoured by prefilling the
assistant's turn with the start of a call (for Harmony, the call's header); a format
that cannot be forced that way is refused with a 400, never silently ignored.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any

from mlx_lm.tokenizer_utils import TokenizerWrapper

from mlxcli.core.errors import InvalidRequest
from mlxcli.core.request import EFFORTS, ChatRequest, Effort, Message, ToolCall, ToolSpec
from mlxcli.engine.formats import REASONING, TOOL, OutputFormat, ToolFormat
from mlxcli.engine.output import OutputPlan

FALLBACK_INSTRUCTIONS = """# Tools

You may call one or more functions to assist with the user query.

You are provided with function signatures within <tools></tools> XML tags:
<tools>
{tools}
</tools>

For each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:
<tool_call>
{{"name": <function-name>, "arguments": <args-json-object>}}
</tool_call>"""

# How a custom tool is called (grammars.py constrains it, output.py reads it back).
CUSTOM_TOOL = "\n\nIts input is plain text, not JSON: inside the tool call, write the line {header}, then the input."

# Efforts that mean "do not think" for templates with an on/off switch.
NO_THINKING = ("off", "minimal")


@dataclass
class RenderedPrompt:
    text: str
    tokens: list[int]
    plan: OutputPlan = field(default_factory=OutputPlan)
    # Where the system block, the turns before the last user message, and all the messages end, in tokens
    # (ascending, each short of the whole prompt): the runners keep the KV there for later requests.
    boundaries: list[int] = field(default_factory=list)
    media: Any = None  # a vision model's image inputs (vision/media.py: numpy arrays, read on the engine thread)
    # Spans of tokens that do not say what they hold (an image's placeholders), as (start, end, identity):
    # the prompt cache keys them by their identity (``cache_tokens``), so two images never share a KV cache.
    opaque: list[tuple[int, int, int]] = field(default_factory=list)

    def cache_tokens(self, tokens: list[int]) -> list[int]:
        """``tokens`` (a prefix of this prompt, or the prompt and what followed it) as the prompt cache keys them."""
        if not self.opaque:
            return tokens
        keyed = list(tokens)
        for start, end, identity in self.opaque:
            end = min(end, len(keyed))
            keyed[start:end] = [identity] * max(end - start, 0)
        return keyed


# Fill-in-the-middle markers (prefix, suffix, middle) as models' vocabularies spell them: Qwen2.5-Coder's
# and StarCoder's (SmolLM's, DeepSeek-Coder's own are different again and not listed: no model here uses them).
FIM_MARKERS = (("<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>"), ("<fim_prefix>", "<fim_suffix>", "<fim_middle>"))


def render(
    tokenizer: TokenizerWrapper, request: ChatRequest, fmt: OutputFormat | None = None, *, boundaries: bool = False
) -> RenderedPrompt:
    if request.prompt is not None:
        return _raw(tokenizer, request.prompt, request.suffix)
    fmt = fmt or OutputFormat()
    tools = _active_tools(request, fmt)
    specs = [tool_json(t) for t in request.tools] if tools is not None else []
    if fmt.native_tools:
        history = _one_call_each(request.messages) if fmt.one_call_per_message else request.messages
        messages = [_template_message(m, fmt.reasoning_key) for m in history]
        template_tools = specs or None
    else:
        messages = [_template_message(m, fmt.reasoning_key) for m in _fallback_messages(request.messages, specs)]
        template_tools = None
    if tokenizer.has_chat_template:
        try:
            text = tokenizer.apply_chat_template(
                messages,
                tools=template_tools,
                add_generation_prompt=True,
                tokenize=False,
                **_template_kwargs(request, fmt),
            )
        except Exception as exc:  # jinja raises TemplateError, TypeError, ... for odd input
            raise InvalidRequest(f"the chat template could not render these messages: {exc}", param="messages") from exc
    else:
        text = _plain_prompt(messages)

    initial = fmt.initial
    if fmt.thinking is not None and text.rstrip().endswith(fmt.thinking.start):
        initial = REASONING  # the template opened the think block for the model
    prefill = ""
    if tools is not None and request.tool_choice != "auto":
        call = _forced_call(request, tools)
        if initial == REASONING and fmt.thinking is not None:
            text += fmt.thinking.end + "\n\n"  # skip the reasoning: the answer must be a call
        text += call
        if fmt.headers is not None:  # the call's header: the model ends it, then writes the arguments
            initial, prefill = fmt.headers.state, call
        else:
            initial, prefill = TOOL, call[len(tools.start) :]
    plan = OutputPlan(
        format=fmt,
        tools=tools,
        tool_specs=specs,
        initial=initial,
        prefill=prefill,
        max_calls=None if request.parallel_tool_calls else 1,
        custom_tools=frozenset(t.name for t in request.tools if t.custom) if tools is not None else frozenset(),
    )
    tokens = list(tokenizer.encode(text, add_special_tokens=False))
    marks = _boundaries(tokenizer, messages, template_tools, _template_kwargs(request, fmt), tokens) if boundaries else []
    return RenderedPrompt(text=text, tokens=tokens, plan=plan, boundaries=marks)


def _boundaries(tokenizer: TokenizerWrapper, messages: list[dict[str, Any]], tools, kwargs: dict[str, Any], tokens: list[int]) -> list[int]:
    """Token offsets at three message boundaries of the prompt: after the leading system messages (with the
    tools), before the last user message, after the last message. Each is found by rendering that prefix
    of the messages and keeping what its tokens share with the prompt's (a template may render a prefix
    a little differently, e.g. with reasoning it drops from history); a boundary the template cannot
    render alone is left out. The turns before those were checkpointed when they were new."""
    if not tokenizer.has_chat_template:
        return []
    n_system = next((i for i, m in enumerate(messages) if m["role"] != "system"), len(messages))
    last_user = max((i for i, m in enumerate(messages) if m["role"] == "user"), default=0)
    marks: list[int] = []
    for n in sorted({n_system, last_user, len(messages)} - {0}):
        try:
            text = tokenizer.apply_chat_template(messages[:n], tools=tools, add_generation_prompt=False, tokenize=False, **kwargs)
        except Exception:  # jinja raises many types for a prefix it will not render (e.g. no user message)
            continue
        end = len(os.path.commonprefix([tokenizer.encode(text, add_special_tokens=False), tokens]))
        if (not marks or end > marks[-1]) and 0 < end < len(tokens):
            marks.append(end)
    return marks


def _raw(tokenizer: TokenizerWrapper, prompt: str, suffix: str | None) -> RenderedPrompt:
    """A legacy completion's prompt: the text itself (with the tokenizer's BOS, if it adds one), or
    with ``suffix``, the model's fill-in-the-middle form; the answer is plain text."""
    if suffix is not None:
        vocab = tokenizer.get_vocab()
        markers = next((m for m in FIM_MARKERS if all(t in vocab for t in m)), None)
        if markers is None:
            raise InvalidRequest("This model does not support fill-in-the-middle (no FIM tokens): send no 'suffix'.", param="suffix")
        prefix_marker, suffix_marker, middle_marker = markers
        prompt = f"{prefix_marker}{prompt}{suffix_marker}{suffix}{middle_marker}"
    return RenderedPrompt(text=prompt, tokens=list(tokenizer.encode(prompt)))


def _active_tools(request: ChatRequest, fmt: OutputFormat) -> ToolFormat | None:
    """The format to parse calls with, or None when this request gets no tools (tool_choice none)."""
    choice = request.tool_choice
    if choice == "none":
        return None
    if not request.tools:
        if choice == "auto":
            return None
        raise InvalidRequest("tool_choice requires a tool call but 'tools' is empty.", param="tool_choice")
    if fmt.tools is None:
        raise InvalidRequest(
            "This model is served with tool calling turned off (tool_call_parser: none); send no 'tools'.",
            param="tools",
        )
    return fmt.tools


def _forced_call(request: ChatRequest, tools: ToolFormat) -> str:
    """The start of the call a ``required`` or named tool_choice asks for, written into the prompt."""
    choice = request.tool_choice
    name = choice.get("name") if isinstance(choice, dict) else None
    if any(t.custom and t.name == name for t in request.tools):
        name = None  # a custom tool's call has no arguments to begin: its start, then the grammar picks it
    call = tools.call_prefix(name)
    if call is None:
        raise InvalidRequest(
            f"This model's tool-call format ({tools.parser}) cannot be forced to call a named function; "
            "use tool_choice 'auto' or 'required'.",
            param="tool_choice",
        )
    return call


def _template_kwargs(request: ChatRequest, fmt: OutputFormat) -> dict[str, Any]:
    """The request's template kwargs, with the reasoning switch set from ``request.reasoning``
    (a client's own ``enable_thinking`` or ``reasoning_effort`` wins; an effort of the neutral scale
    that the template has no level for becomes its nearest level)."""
    kwargs = dict(request.template_kwargs)
    effort = request.reasoning
    if fmt.thinking is not None and "enable_thinking" not in kwargs:
        kwargs["enable_thinking"] = effort not in NO_THINKING
    if fmt.efforts:
        own = kwargs.get("reasoning_effort")
        own = "off" if own == "none" else own  # OpenAI's name for off
        if own is None and effort is not None:
            kwargs["reasoning_effort"] = nearest_effort(effort, fmt.efforts)
        elif own in EFFORTS and own not in fmt.efforts:
            kwargs["reasoning_effort"] = nearest_effort(own, fmt.efforts)
    return kwargs


def nearest_effort(effort: Effort, levels: tuple[str, ...]) -> str:
    """The model's level closest to ``effort`` on the neutral scale (``off`` → its lowest, ``max`` → its
    highest, for models that cannot turn reasoning off or go beyond ``high``)."""
    rank = EFFORTS.index
    return min(levels, key=lambda level: (abs(rank(level) - rank(effort)), -rank(level)))


def tool_json(tool: ToolSpec) -> dict[str, Any]:
    """A tool as chat templates and mlx-lm's parsers expect it (OpenAI's nested form); a custom tool
    as a function that says how its raw input is written."""
    function: dict[str, Any] = {"name": tool.name, "parameters": tool.parameters}
    description = tool.description or ""
    if tool.custom:
        function["parameters"] = {"type": "object", "properties": {}}
        description += CUSTOM_TOOL.format(header=json.dumps({"name": tool.name}))
        if tool.grammar is not None:
            description += f" It must match this {tool.grammar.kind} grammar:\n{tool.grammar.definition}"
    if description:
        function["description"] = description.strip()
    return {"type": "function", "function": function}


def _template_message(message: Message, reasoning_key: str = "reasoning_content") -> dict[str, Any]:
    out: dict[str, Any] = {"role": message.role, "content": message.content or ""}
    if message.images:  # the parts vision templates read: one placeholder per image, then the text
        out["content"] = [{"type": "image"} for _ in message.images] + [{"type": "text", "text": message.content or ""}]
    if message.name:
        out["name"] = message.name
    if message.tool_calls:
        out["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": _arguments(c.arguments)}}
            for c in message.tool_calls
        ]
    if message.tool_call_id:
        out["tool_call_id"] = message.tool_call_id
    if message.reasoning:
        out[reasoning_key] = message.reasoning
    return out


def _one_call_each(messages: list[Message]) -> list[Message]:
    """History for a template that renders one call per assistant message and names a tool result
    after the call before it: each call a message of its own, followed by its result (results that
    answer no call of the message keep their place after them). The first call's message carries the
    reasoning and any text before the calls, as reasoning: such a template takes one or the other."""
    out: list[Message] = []
    i = 0
    while i < len(messages):
        m = messages[i]
        i += 1
        if m.role != "assistant" or not m.tool_calls:
            out.append(m)
            continue
        end = i
        while end < len(messages) and messages[end].role == "tool":
            end += 1
        results, i = messages[i:end], end
        reasoning = "\n\n".join(t for t in (m.reasoning, m.content) if t) or None
        for n, call in enumerate(m.tool_calls):
            out.append(Message(role="assistant", tool_calls=[call], reasoning=reasoning if n == 0 else None))
            answer = next((r for r in results if r.tool_call_id == call.id), None)
            if answer is not None:
                results.remove(answer)
                out.append(answer)
        out += results
    return out


def _arguments(text: str) -> Any:
    # Chat templates expect arguments as a mapping; keep the text if it is not JSON.
    try:
        return json.loads(text)
    except ValueError:
        return text


# ---- the fallback format -------------------------------------------------------


def _fallback_messages(messages: list[Message], specs: list[dict[str, Any]]) -> list[Message]:
    """Messages for a template without tool support: tools, calls and results written as text."""
    out: list[Message] = []
    for m in messages:
        if m.role == "tool":
            result = f"<tool_response>\n{m.content or ''}\n</tool_response>"
            last = out[-1] if out else None
            if last is not None and last.role == "user" and last.content and last.content.startswith("<tool_response>"):
                last.content += "\n" + result  # the results of one turn's calls, together
                last.images = last.images + m.images
            else:
                out.append(Message(role="user", content=result, images=m.images))
        elif m.role == "assistant" and m.tool_calls:
            calls = "\n".join(_fallback_call(c) for c in m.tool_calls)
            out.append(Message(role="assistant", content=f"{m.content}\n{calls}" if m.content else calls, reasoning=m.reasoning))
        else:
            out.append(Message(role=m.role, content=m.content, name=m.name, reasoning=m.reasoning, images=m.images))
    if specs:
        instructions = FALLBACK_INSTRUCTIONS.format(tools="\n".join(json.dumps(s, ensure_ascii=False) for s in specs))
        if out and out[0].role == "system":
            out[0].content = f"{out[0].content}\n\n{instructions}" if out[0].content else instructions
        else:
            out.insert(0, Message(role="system", content=instructions))
    return out


def _fallback_call(call: ToolCall) -> str:
    body = {"name": call.name, "arguments": _arguments(call.arguments)}
    return f"<tool_call>\n{json.dumps(body, ensure_ascii=False)}\n</tool_call>"


def _plain_prompt(messages: list[dict[str, Any]]) -> str:
    """For models without a chat template: a simple role-prefixed transcript."""
    lines = [f"{m['role'].capitalize()}: {m['content']}" for m in messages]
    return "\n\n".join(lines) + "\n\nAssistant:"

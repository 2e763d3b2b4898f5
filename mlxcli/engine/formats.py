"""What a model's output looks like: its reasoning markers, its tool-call format, and the states between.

Detected once per model from its tokenizer (vocabulary and chat template) with
mlx-lm's own detection (``mlx_lm.tokenizer_utils``: ``_infer_tool_parser``,
``_infer_thinking``, structural markers and a chat template's response format), and
overridable per model (``tool_call_parser`` and ``reasoning_parser`` in a config file)
or for every model (``--tool-call-parser``).

The output is read by a state machine over decoded text (output.py). ``transitions``
derives its table the way mlx-lm's ``make_text_state_machine`` does: ``normal`` (the
answer), ``reasoning``, ``tool`` (a call, parsed when it ends) and any other state a
response format names (markup, e.g. a message header: dropped). A new output format
is data here (markers and transitions) plus, for its tool calls, a parser.

Tool calls are parsed by mlx-lm's parsers (``mlx_lm/tool_parsers/<name>.py``: each
has ``tool_call_start``, ``tool_call_end`` and ``parse_tool_call(text, tools)``).
A template that cannot render tools gets the *fallback*: we describe the tools in
the system prompt in the Hermes/Qwen JSON convention and parse with ``json_tools``
(see ``prompt.py``).
"""

from __future__ import annotations

import importlib
import logging
import pkgutil
from dataclasses import dataclass, field
from typing import Any, Callable

import mlx_lm.tool_parsers
from mlx_lm.tokenizer_utils import TokenizerWrapper

from mlxcli.core.errors import ModelError

log = logging.getLogger("mlxcli.engine")

NONE = "none"  # a parser name that turns the feature off for a model
FALLBACK_PARSER = "json_tools"

# The states whose text means something; any other state a response format names is markup.
NORMAL, REASONING, TOOL = "normal", "reasoning", "tool"
# The effort levels of a chat template that reads ``reasoning_effort`` (gpt-oss and others).
TEMPLATE_EFFORTS = ("low", "medium", "high")

Transitions = dict[str, list[tuple[str, str]]]  # state → [(marker, next state)]

# The text that begins a call to one named function, per format: prefilled into the
# prompt to honour a tool_choice naming a function. Formats missing here can still be
# forced to call *some* tool (their start marker), not a named one.
NAMED_CALL_PREFIX = {
    "json_tools": '<tool_call>\n{{"name": "{name}", "arguments": ',
    "qwen3_coder": "<tool_call>\n<function={name}>\n",
    "glm47": "<tool_call>{name}\n",
    "laguna": "<tool_call>{name}\n",
    "longcat": "<longcat_tool_call>{name}\n",
    "minimax_m2": '<minimax:tool_call>\n<invoke name="{name}">\n',
    "mistral": "[TOOL_CALLS]{name}[ARGS]",
    "pythonic": "<|tool_call_start|>[{name}(",
    "kimi_k2": "<|tool_calls_section_begin|><|tool_call_begin|>functions.{name}:0<|tool_call_argument_begin|>",
    "function_gemma": "<start_function_call>call:{name}{{",
    "gemma4": "<|tool_call>call:{name}{{",
    "minicpm5": '<function name="{name}">',
}

# Reasoning markers by name (``reasoning_parser`` in a config file).
THINK_MARKERS = {
    "think": ("<think>", "</think>"),
    "longcat": ("<longcat_think>", "</longcat_think>"),
    "gemma4": ("<|channel>thought", "<channel|>"),
    "kimi_k3": ("<|open|>think<|sep|>", "<|close|>think<|sep|>"),
}

_PROBE_TOOL = {
    "type": "function",
    "function": {"name": "mlxcli_probe_tool", "description": "probe", "parameters": {"type": "object", "properties": {}}},
}


def tool_parsers() -> list[str]:
    """Every parser mlx-lm ships (the valid ``--tool-call-parser`` values, besides ``none``)."""
    return sorted(m.name for m in pkgutil.iter_modules(mlx_lm.tool_parsers.__path__))


@dataclass(frozen=True)
class ToolFormat:
    """How a model writes tool calls: between ``start`` and ``end`` (``end`` may be empty: to the end)."""

    parser: str  # the mlx-lm parser module's name
    start: str
    end: str
    parse: Callable[[str, Any], Any] = field(repr=False, compare=False)
    fallback: bool = False  # the template cannot render tools: they go in the system prompt (prompt.py)

    def call_prefix(self, name: str | None) -> str | None:
        """Text that begins a call (to ``name`` when given), or None when this format cannot force it."""
        if name is None:
            return self.start
        pattern = NAMED_CALL_PREFIX.get(self.parser)
        return pattern.format(name=name) if pattern else None


@dataclass(frozen=True)
class ThinkFormat:
    start: str
    end: str
    switch: bool = False  # the chat template reads ``enable_thinking``


@dataclass(frozen=True)
class OutputFormat:
    """What a model writes besides its answer. ``tools`` None: tool calling is off for it."""

    tools: ToolFormat | None = None
    thinking: ThinkFormat | None = None
    native_tools: bool = False  # the chat template renders tools, tool calls and tool results itself
    markers: tuple[str, ...] = ()  # structural markers inside the answer: dropped
    response: Transitions = field(default_factory=dict)  # a response format's own states and edges
    initial: str = NORMAL  # where a response format starts (e.g. in a message header)
    efforts: tuple[str, ...] = ()  # the template's own reasoning_effort levels, if it reads one

    def transitions(self, tools: ToolFormat | None) -> Transitions:
        """The state machine's table for one request (``tools`` None: calls are not looked for), as
        mlx-lm's ``make_text_state_machine`` builds it."""
        table: Transitions = {NORMAL: []}
        if self.thinking is not None:
            table[NORMAL].append((self.thinking.start, REASONING))
            table[REASONING] = [(self.thinking.end, NORMAL)]
        if tools is not None:
            # A response format that leads into "tool" decides where calls start.
            if not any(dst == TOOL for edges in self.response.values() for _, dst in edges):
                table[NORMAL].append((tools.start, TOOL))
            if self.thinking is not None:
                table[REASONING].append((tools.start, TOOL))  # a call right out of the reasoning
            table[TOOL] = [(tools.end, NORMAL)] if tools.end else []  # no end: the call runs to the end
        table[NORMAL] += [(marker, NORMAL) for marker in self.markers]
        for state, edges in self.response.items():
            table.setdefault(state, []).extend(edges)
        return table


def tool_format(parser: str, *, fallback: bool = False) -> ToolFormat:
    if parser not in tool_parsers():
        raise ModelError(f"unknown tool-call parser {parser!r} (known: {', '.join([NONE, *tool_parsers()])})")
    module = importlib.import_module(f"mlx_lm.tool_parsers.{parser}")
    return ToolFormat(parser, module.tool_call_start, module.tool_call_end, module.parse_tool_call, fallback)


def detect(tokenizer: TokenizerWrapper, tool_call_parser: str | None = None, reasoning_parser: str | None = None) -> OutputFormat:
    """The formats of a model with this tokenizer; the parser names override detection."""
    template = tokenizer.chat_template if isinstance(getattr(tokenizer, "chat_template", None), str) else ""
    native = _renders_tools(tokenizer)
    return OutputFormat(
        tools=_tools(tokenizer, tool_call_parser, native),
        thinking=_thinking(tokenizer, template, reasoning_parser),
        native_tools=native,
        markers=tuple(getattr(tokenizer, "structural_markers", None) or ()),
        response={state: list(edges) for state, edges in (getattr(tokenizer, "response_transitions", None) or {}).items()},
        initial=getattr(tokenizer, "response_initial_state", None) or NORMAL,
        efforts=TEMPLATE_EFFORTS if "reasoning_effort" in template else (),
    )


def _tools(tokenizer: TokenizerWrapper, override: str | None, native: bool) -> ToolFormat | None:
    if override == NONE:
        return None
    if override:
        chosen = tool_format(override)  # an unknown name fails even where the fallback is used
        if native:
            return chosen
        log.warning("tool_call_parser %s is not used: the chat template does not render tools, so the fallback format is", override)
        return tool_format(FALLBACK_PARSER, fallback=True)
    detected = _detected_parser(tokenizer)
    if native and detected:
        return tool_format(detected)
    if native:
        log.warning(
            "the chat template renders tools in a format mlx-lm has no parser for: tools are described in the "
            "system prompt instead (fallback format); set tool_call_parser to use the template's own format"
        )
    return tool_format(FALLBACK_PARSER, fallback=True)


def _detected_parser(tokenizer: TokenizerWrapper) -> str | None:
    """The parser mlx-lm chose when it loaded the tokenizer (from the template, or the vocabulary)."""
    parse = getattr(tokenizer, "tool_parser", None)
    return parse.__module__.rsplit(".", 1)[-1] if parse is not None else None


def _thinking(tokenizer: TokenizerWrapper, template: str, override: str | None) -> ThinkFormat | None:
    switch = "enable_thinking" in template
    if override == NONE:
        return None
    if override:
        if override not in THINK_MARKERS:
            raise ModelError(f"unknown reasoning parser {override!r} (known: {', '.join([NONE, *THINK_MARKERS])})")
        return ThinkFormat(*THINK_MARKERS[override], switch=switch)
    if tokenizer.has_thinking:  # markers that are tokens of the vocabulary
        return ThinkFormat(tokenizer.think_start, tokenizer.think_end, switch=switch)
    start, end = THINK_MARKERS["think"]
    if start in template and end in template:  # written as plain text by the template
        return ThinkFormat(start, end, switch=switch)
    return None


def _renders_tools(tokenizer: TokenizerWrapper) -> bool:
    """Whether the chat template writes the tools it is given into the prompt."""
    if not tokenizer.has_chat_template:
        return False
    probe = [{"role": "user", "content": "Hello"}]
    try:
        with_tools = tokenizer.apply_chat_template(probe, tools=[_PROBE_TOOL], add_generation_prompt=True, tokenize=False)
        without = tokenizer.apply_chat_template(probe, add_generation_prompt=True, tokenize=False)
    except Exception:  # jinja raises many types for templates that insist on other input
        return False
    return with_tools != without and "mlxcli_probe_tool" in with_tools


def describe(fmt: OutputFormat) -> str:
    """One line for the start-up log."""
    tools = "off" if fmt.tools is None else f"{fmt.tools.parser}{' (fallback prompt)' if fmt.tools.fallback else ''}"
    thinking = "none" if fmt.thinking is None else f"{fmt.thinking.start}…{fmt.thinking.end}"
    return f"tool calls: {tools}; reasoning: {thinking}"


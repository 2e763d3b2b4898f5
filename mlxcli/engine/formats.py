"""What a model's output looks like: its reasoning markers, its tool-call format, and the states between.

Detected once per model from its tokenizer (vocabulary and chat template) with
mlx-lm's own detection (``mlx_lm.tokenizer_utils``: ``_infer_tool_parser``,
``_infer_thinking``, structural markers and a chat template's response format), or as
Harmony (gpt-oss: its ``model_type``, or Harmony's special tokens and template; see
harmony.py), and overridable per model (``tool_call_parser`` and ``reasoning_parser`` in
a config file) or for every model (``--tool-call-parser``, ``--reasoning-parser``).

The output is read by a state machine over decoded text (output.py). ``transitions``
derives its table the way mlx-lm's ``make_text_state_machine`` does: ``normal`` (the
answer), ``reasoning``, ``tool`` (a call, parsed when it ends) and any other state a
response format names (markup, e.g. a message header: dropped). A format whose messages
say in a header what they are (Harmony) also names its header state (``Headers``): the
router hands each header's text to the format's ``route``, whose answer is the state the
message's body is read in. A new output format is data here (markers and transitions)
plus, for its tool calls, a parser.

Tool calls are parsed by mlx-lm's parsers (``mlx_lm/tool_parsers/<name>.py``: each
has ``tool_call_start``, ``tool_call_end`` and ``parse_tool_call(text, tools)``), or by
ours with the same interface (``OWN_PARSERS``).
A template that cannot render tools gets the *fallback*: we describe the tools in
the system prompt in the Hermes/Qwen JSON convention and parse with ``json_tools``
(see ``prompt.py``).
"""

from __future__ import annotations

import importlib
import logging
import pkgutil
import re
from dataclasses import dataclass, field
from typing import Any, Callable

import mlx_lm.tool_parsers
from mlx_lm.tokenizer_utils import TokenizerWrapper

from mlxcli.core.errors import ModelError
from mlxcli.engine import harmony

log = logging.getLogger("mlxcli.engine")

NONE = "none"  # a parser name that turns the feature off for a model
FALLBACK_PARSER = "json_tools"
HARMONY = "harmony"  # a format name for both overrides: channels, reasoning and tool calls together
OWN_PARSERS = {HARMONY: "mlxcli.engine.harmony"}  # tool parsers of ours, with mlx-lm's module interface

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
    HARMONY: harmony.NAMED_CALL_PREFIX,
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
    """Every parser mlx-lm ships, and ours (the valid ``--tool-call-parser`` values, besides ``none``)."""
    return sorted([m.name for m in pkgutil.iter_modules(mlx_lm.tool_parsers.__path__)] + list(OWN_PARSERS))


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
class Headers:
    """Messages that begin with a header saying what they are: the header's text is collected in
    ``state``; the state after it, ``body``, is read as ``kinds[kind]``, ``kind`` being what
    ``route(header text)`` answers (with the text a call's body starts with). An unmapped kind is
    markup: the message is dropped."""

    state: str
    body: str
    route: Callable[[str], tuple[str, str]] = field(repr=False, compare=False)
    kinds: dict[str, str] = field(default_factory=dict)

    def body_state(self, kind: str) -> str:
        return self.kinds.get(kind, self.body)


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
    headers: Headers | None = None  # messages whose headers decide what their bodies are (Harmony)
    stop_tokens: tuple[str, ...] = ()  # tokens that end generation besides the model's end-of-sequence
    reasoning_key: str = "reasoning_content"  # the message field the template reads earlier reasoning from
    # The template renders one call per assistant message and names a tool result after the call just
    # before it (gpt-oss): history is written that way (prompt.py).
    one_call_per_message: bool = False

    def transitions(self, tools: ToolFormat | None) -> Transitions:
        """The state machine's table for one request (``tools`` None: calls are not looked for), as
        mlx-lm's ``make_text_state_machine`` builds it."""
        if self.headers is not None:  # the headers route every message: the format's own table is all
            return {state: list(edges) for state, edges in self.response.items()}
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
    module = importlib.import_module(OWN_PARSERS.get(parser) or f"mlx_lm.tool_parsers.{parser}")
    return ToolFormat(parser, module.tool_call_start, module.tool_call_end, module.parse_tool_call, fallback)


def detect(
    tokenizer: TokenizerWrapper,
    tool_call_parser: str | None = None,
    reasoning_parser: str | None = None,
    model_type: str | None = None,
) -> OutputFormat:
    """The formats of a model with this tokenizer (and ``model_type``, from its config); the parser
    names override detection."""
    template = tokenizer.chat_template if isinstance(getattr(tokenizer, "chat_template", None), str) else ""
    efforts = TEMPLATE_EFFORTS if "reasoning_effort" in template else ()
    reasoning_key = _reasoning_key(template)
    if _is_harmony(tokenizer, template, model_type, (tool_call_parser, reasoning_parser)):
        return harmony_format(tool_call_parser != NONE, reasoning_parser != NONE, efforts=efforts, reasoning_key=reasoning_key)
    native = _renders_tools(tokenizer)
    return OutputFormat(
        tools=_tools(tokenizer, tool_call_parser, native),
        thinking=_thinking(tokenizer, template, reasoning_parser),
        native_tools=native,
        markers=tuple(getattr(tokenizer, "structural_markers", None) or ()),
        response={state: list(edges) for state, edges in (getattr(tokenizer, "response_transitions", None) or {}).items()},
        initial=getattr(tokenizer, "response_initial_state", None) or NORMAL,
        efforts=efforts,
        reasoning_key=reasoning_key,
    )


def harmony_format(tools: bool = True, reasoning: bool = True, **fields: Any) -> OutputFormat:
    """gpt-oss's Harmony (harmony.py): ``analysis`` is the reasoning (dropped when ``reasoning`` is
    off), ``final`` the answer, ``commentary`` without a recipient a preamble, shown as answer text
    (the progress notes the model writes before its calls), and a message to ``functions.NAME`` a
    call (markup when ``tools`` is off)."""
    kinds = {"final": NORMAL, "commentary": NORMAL, harmony.CALL: TOOL}
    if reasoning:
        kinds["analysis"] = REASONING
    return OutputFormat(
        tools=tool_format(HARMONY) if tools else None,
        native_tools=True,
        response={state: list(edges) for state, edges in harmony.TRANSITIONS.items()},
        initial=harmony.HEADER,
        headers=Headers(harmony.HEADER, harmony.BODY, harmony.route, kinds),
        stop_tokens=harmony.STOP_TOKENS,
        one_call_per_message=True,
        **fields,
    )


def _is_harmony(tokenizer: TokenizerWrapper, template: str, model_type: str | None, overrides: tuple[str | None, ...]) -> bool:
    """Harmony when an override names it, or detected unless an override names another format."""
    if HARMONY in overrides:
        return True
    if any(o not in (None, NONE) for o in overrides):
        return False
    return harmony.speaks_harmony(tokenizer.get_vocab(), template, model_type)


def _reasoning_key(template: str) -> str:
    """``thinking`` for templates that read it (gpt-oss) rather than Qwen's ``reasoning_content``."""
    if "reasoning_content" not in template and re.search(r"message\.thinking|message\[['\"]thinking['\"]\]", template):
        return "thinking"
    return "reasoning_content"


def stop_token_ids(fmt: OutputFormat, tokenizer: TokenizerWrapper) -> set[int]:
    """The ids of the format's stop tokens that the vocabulary has."""
    vocabulary = tokenizer.get_vocab()
    return {vocabulary[token] for token in fmt.stop_tokens if token in vocabulary}


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
            raise ModelError(f"unknown reasoning parser {override!r} (known: {', '.join([NONE, HARMONY, *THINK_MARKERS])})")
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
    if fmt.headers is not None:
        thinking = "the analysis channel" if REASONING in fmt.headers.kinds.values() else "none (the analysis channel is dropped)"
    return f"tool calls: {tools}; reasoning: {thinking}"


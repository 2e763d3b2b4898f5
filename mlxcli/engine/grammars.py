"""The grammar of one request's output, for llguidance (constraints.py): reasoning, answer and tool calls.

The grammar follows what the model writes (its ``OutputFormat``): a reasoning model thinks freely
first (``<think>`` … ``</think>`` is a lazy lexeme), then comes what the request constrains:

    response_format alone             the answer is that JSON
    response_format and tools (auto)  the JSON answer, or tool calls
    strict tools (auto)               free text in which every call is constrained once it starts
    tool_choice required / named      the call the prompt began (prompt.py prefills its start), then
                                      further calls when parallel calls are allowed, then the end

A call's grammar is the model's own tool-call format; formats are data in ``CALL_FORMATS`` (the
Hermes/Qwen ``json_tools`` format: the fallback every template without tool support gets). A
strict tool on a format without one is generated as before, unconstrained, and logged. Function
arguments follow the tool's schema when it is strict, else any JSON object. A custom tool's
input is raw text after a ``{"name": …}`` header line, in its grammar when it has one.

Every JSON Schema, Lark grammar and regex is its own subgrammar (``@name``), so each can be
checked on its own and an error names the request field it came from (``Piece.param``).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any

from mlxcli.core.errors import InvalidRequest
from mlxcli.core.request import ChatRequest, Grammar, ToolSpec
from mlxcli.engine.formats import REASONING, TOOL
from mlxcli.engine.output import OutputPlan

log = logging.getLogger("mlxcli.engine")

# Compact JSON as models write it (``{"a": 1, "b": 2}``), and no unbounded whitespace to loop in.
JSON_STYLE = {"whitespace_flexible": False, "item_separator": ", ", "key_separator": ": "}
ANY_OBJECT = {"type": "object"}


@dataclass(frozen=True)
class CallFormat:
    """A tool-call format that writes each call as ``start`` newline JSON newline ``end``, with the
    JSON ``{"name": …, "arguments": {…}}``."""

    start: str
    end: str
    gap: str = "\n"  # between two calls


CALL_FORMATS = {"json_tools": CallFormat(start="<tool_call>", end="</tool_call>")}


@dataclass(frozen=True)
class Piece:
    """One subgrammar: a JSON Schema, a Lark grammar or a regex, and the request field it came from."""

    name: str
    param: str
    body: dict[str, Any]  # llguidance's GrammarWithLexer, without its name


@dataclass
class _Grammar:
    specials: frozenset[str]  # the tokenizer's special tokens: written <like_this> in Lark
    rules: list[str] = field(default_factory=list)
    pieces: list[Piece] = field(default_factory=list)

    def piece(self, grammar: Grammar) -> str:
        """A reference to ``grammar`` as a subgrammar."""
        name = f"g{len(self.pieces)}"
        self.pieces.append(Piece(name, grammar.param, piece_body(grammar)))
        return f"@{name}"

    def literal(self, text: str) -> str:
        """``text`` in Lark: a special token by name, else a string."""
        if text in self.specials:
            return f"<{text}>"
        return json.dumps(text, ensure_ascii=False)

    def until(self, marker: str) -> str:
        """Any text up to and including ``marker`` (lazy: it ends at the first one)."""
        if marker in self.specials:  # a special token cannot occur in text, so the greedy regex stops there
            return f"/(?s:.*)/ {self.literal(marker)}"
        name = f"until{len(self.rules)}"
        self.rules.append(f"{name}[suffix={self.literal(marker)}]: /(?s:.*)/")
        return name


def piece_body(grammar: Grammar) -> dict[str, Any]:
    """A grammar as llguidance's GrammarWithLexer (without its name)."""
    if grammar.kind == "json":
        return {"json_schema": {**(grammar.schema or ANY_OBJECT), "x-guidance": JSON_STYLE}}
    if grammar.kind == "regex":
        return {"lark_grammar": f"start: /{_regex_body(grammar.definition)}/"}
    return {"lark_grammar": grammar.definition}


def alone(grammar: Grammar) -> str:
    """A grammar as a whole llguidance grammar of its own (to check it apart from the rest)."""
    return json.dumps({"grammars": [piece_body(grammar)]})


def build(request: ChatRequest, plan: OutputPlan, specials: frozenset[str]) -> tuple[str, list[Piece]] | None:
    """The llguidance grammar (JSON text) for the request's output, with its pieces; None when nothing
    is constrained. Raises InvalidRequest for a constraint this model's output cannot carry."""
    g = _Grammar(specials)
    body = _body(request, plan, g)
    if body is None:
        return None
    if plan.format.response:
        raise InvalidRequest(
            "Structured outputs are not supported for this model: its answers are wrapped in a response format "
            "(message headers) that the constraint does not follow.",
            param=request.response_format.param if request.response_format else "tools",
        )
    start = f"start: {_reasoning(plan, g)}{body}"
    lark = "\n".join([start, *g.rules])
    grammars = [{"name": "main", "lark_grammar": lark}] + [{"name": p.name, **p.body} for p in g.pieces]
    return json.dumps({"grammars": grammars}), g.pieces


def _reasoning(plan: OutputPlan, g: _Grammar) -> str:
    """What comes before the constrained part: free reasoning, when the model thinks first."""
    thinking = plan.format.thinking
    if thinking is None or plan.initial == TOOL:
        return ""
    rest = f"{g.until(thinking.end)} /[ \\t\\r\\n]*/ "
    if plan.initial == REASONING:  # the prompt opened the block
        return rest
    return f"({g.literal(thinking.start)} {rest})? "


def _body(request: ChatRequest, plan: OutputPlan, g: _Grammar) -> str | None:
    tools = plan.tools
    calls = CALL_FORMATS.get(tools.parser) if tools is not None else None
    answer = g.piece(request.response_format) if request.response_format is not None else None
    active = request.tools if tools is not None else []
    constrained = [t for t in active if t.strict or t.grammar is not None]
    if plan.initial == TOOL:  # tool_choice required or named: the prompt began the call
        return _forced(request, calls, g) if calls is not None else None
    if tools is not None and calls is None and constrained:
        log.warning("strict tools are not constrained for the %s tool-call format (no grammar for it)", tools.parser)
    if answer is not None and tools is not None:
        call = _call(active, calls, g) if calls is not None else _any_call(tools.start, tools.end, g)
        return f"({answer} | {_calls(call, request.parallel_tool_calls, calls, g)})"
    if answer is not None:
        return answer
    if calls is None or not constrained:
        return None
    # Free text; a call start begins a constrained call; text may follow it.
    head = g.until(calls.start)
    g.rules.append(f"text_call: {head} {_call_rest(active, calls, g)}")
    return "text_call* /(?s:.*)/"


def _forced(request: ChatRequest, calls: CallFormat, g: _Grammar) -> str:
    """The rest of a call whose start the prompt holds, then more calls if allowed, then the end."""
    choice = request.tool_choice
    named = choice.get("name") if isinstance(choice, dict) else None
    tool = next((t for t in request.tools if t.name == named), None)
    if tool is not None and not tool.custom:  # the prompt wrote up to the arguments
        close = g.literal("}\n" + calls.end)
        return f"{_arguments(tool, g)} {close}"
    rest = _call_rest([tool] if tool is not None else request.tools, calls, g)
    if tool is not None or not request.parallel_tool_calls:
        return rest
    return f"{rest} ({g.literal(calls.gap)} {_call(request.tools, calls, g)})*"


def _calls(call: str, parallel: bool, calls: CallFormat | None, g: _Grammar) -> str:
    if not parallel:
        return call
    gap = g.literal(calls.gap if calls is not None else "\n")
    return f"{call} ({gap} {call})*"


def _call(tools: list[ToolSpec], calls: CallFormat, g: _Grammar) -> str:
    return f"{g.literal(calls.start)} {_call_rest(tools, calls, g)}"


def _call_rest(tools: list[ToolSpec], calls: CallFormat, g: _Grammar) -> str:
    """A call after its start marker: one of ``tools``, then the end marker."""
    options = []
    newline, end = g.literal("\n"), "\n" + calls.end
    functions = [t for t in tools if not t.custom]
    if functions:
        schema = {"anyOf": [_function_schema(t) for t in functions]} if len(functions) > 1 else _function_schema(functions[0])
        ref = g.piece(Grammar("json", param="tools", schema=schema))
        options.append(f"{newline} {ref} {g.literal(end)}")
    for tool in (t for t in tools if t.custom):
        header = g.literal("\n" + json.dumps({"name": tool.name}) + "\n")
        if tool.grammar is None:
            options.append(f"{header} {g.until(end)}")
        else:
            options.append(f"{header} {g.piece(tool.grammar)} {g.literal(end)}")
    return options[0] if len(options) == 1 else "(" + " | ".join(options) + ")"


def _function_schema(tool: ToolSpec) -> dict[str, Any]:
    """A call object that names ``tool`` and carries its arguments."""
    arguments = tool.parameters if tool.strict else ANY_OBJECT
    return {
        "type": "object",
        "properties": {"name": {"const": tool.name}, "arguments": arguments},
        "required": ["name", "arguments"],
        "additionalProperties": False,
    }


def _arguments(tool: ToolSpec, g: _Grammar) -> str:
    return g.piece(Grammar("json", param=tool.param, schema=tool.parameters if tool.strict else ANY_OBJECT))


def _any_call(start: str, end: str, g: _Grammar) -> str:
    """A call in a format without a grammar: its start marker, anything, its end marker (if it has one)."""
    if not end:
        return f"{g.literal(start)} /(?s:.*)/"
    return f"{g.literal(start)} {g.until(end)}"


def _regex_body(regex: str) -> str:
    """A regex as the body of a Lark ``/…/`` terminal: its slashes escaped."""
    out, escaped = [], False
    for c in regex:
        if c == "/" and not escaped:
            out.append("\\/")
        else:
            out.append(c)
        escaped = c == "\\" and not escaped
    return "".join(out)


"""Tools, tool_choice and reasoning effort as both OpenAI APIs write them.

Chat Completions nests a function under ``function`` (``{"type": "function", "function": {"name"}}``),
Responses does not (``{"type": "function", "name"}``); otherwise the rules are the same. Responses' own
tool types (namespaces, shells, hosted tools) are read in ``responses_tools``; a choice names a namespaced
tool by ``namespace`` and ``name``, as its calls are written.
"""

from __future__ import annotations

from typing import Any

from mlxcli.core.errors import InvalidRequest
from mlxcli.core.request import Effort, ToolSpec
from mlxcli.server.providers import common
from mlxcli.server.providers.openai import responses_tools
from mlxcli.server.validate import Obj, objects

MAX_TOOLS = 128
EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh", "max")


def tool_fields(o: Obj, specs: list[ToolSpec], *, nested: bool) -> dict[str, Any]:
    """The ChatRequest fields a request's tools (``specs``) decide: ``tools``, ``tool_choice``, ``parallel_tool_calls``."""
    choice, specs = tool_choice(o, specs, nested=nested)
    return {"tools": specs, "tool_choice": choice, "parallel_tool_calls": o.bool("parallel_tool_calls", default=True)}


def chat_tools(o: Obj) -> list[ToolSpec]:
    """Chat Completions' tools: functions only (Responses' tool types are in ``responses_tools``)."""
    specs = []
    for t in objects(o.list("tools", max_items=MAX_TOOLS)):
        kind = t.str("type", required=True)
        if kind != "function":
            raise InvalidRequest(f"Tool type {kind!r} is not supported by this server: only 'function' tools.", param=t.param("type"))
        specs.append(common.tool(t.obj("function", required=True)))
    return specs


def tool_choice(o: Obj, specs: list[ToolSpec], *, nested: bool) -> tuple[str | dict[str, Any], list[ToolSpec]]:
    """(the neutral tool_choice, the tools the model may call: ``allowed_tools`` narrows them)."""
    value = o.raw("tool_choice")
    if value is None:
        return ("auto" if specs else "none"), specs
    if isinstance(value, str):
        return o.str("tool_choice", choices=("none", "auto", "required")), specs
    choice = o.obj("tool_choice")
    kind = choice.str("type", required=True, choices=("function", "allowed_tools") if nested else ("function", "custom", "allowed_tools"))
    if kind in ("function", "custom"):
        function = choice.obj("function", required=True) if nested else choice
        return common.named_tool(tool_name(function), specs, "tool_choice"), specs
    allowed = choice.obj("allowed_tools", required=True) if nested else choice
    mode = allowed.str("mode", default="auto", choices=("auto", "required"))
    refs = [t.obj("function", required=True) if nested else t for t in objects(allowed.list("tools", required=True, max_items=MAX_TOOLS))]
    return mode, allowed_tools(specs, refs)


def tool_name(ref: Obj) -> str:
    """The tool a choice names: a namespaced one (Responses: ``namespace`` beside ``name``, as its calls are
    written) by the flat name it is offered under."""
    name = ref.str("name", required=True)
    namespace = ref.str("namespace", max_len=64)
    return responses_tools.flat_name(namespace, name) if namespace else name


def allowed_tools(specs: list[ToolSpec], refs: list[Obj]) -> list[ToolSpec]:
    """The tools an ``allowed_tools`` choice names (``refs``: objects with a ``name``), in ``tools`` order."""
    known = {t.name for t in specs}
    names = set()
    for ref in refs:
        name = tool_name(ref)
        if name not in known:
            raise InvalidRequest(f"allowed_tools names {name!r}, which is not in 'tools'.", param=ref.param("name"))
        names.add(name)
    return [t for t in specs if t.name in names]


def effort(o: Obj, key: str = "reasoning_effort") -> Effort | None:
    """OpenAI's ``reasoning_effort`` / ``reasoning.effort`` on the neutral scale."""
    return neutral_effort(o.str(key, choices=EFFORTS))


def neutral_effort(value: Any) -> Effort | None:
    """An OpenAI effort on the neutral scale (``none`` is off); None for anything else."""
    if value not in EFFORTS:
        return None
    return "off" if value == "none" else value

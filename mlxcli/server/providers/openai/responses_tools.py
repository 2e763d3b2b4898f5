"""The Responses API's tool types, and how a call to each goes out and comes back in.

- ``function`` and ``custom`` tools are offered as they are.
- ``namespace`` tools (Codex's ``multi_agent_v1``, MCP servers) are flattened: each inner tool is offered
  as ``{namespace}__{name}`` (Codex's own flat name for a namespaced tool), and its call comes back as a
  ``function_call`` (or ``custom_tool_call``) with ``namespace`` and the inner ``name``, which is how Codex
  matches a call to a namespaced tool.
- ``local_shell`` and ``shell`` are run by the client: offered as a function with the command as its
  argument, called back as a ``local_shell_call`` (``action.command``) or ``shell_call`` (``action.commands``).
- Hosted tools the server cannot run (``HOSTED``) are left out of the prompt, with one log line per type.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from mlxcli.core.errors import InvalidRequest
from mlxcli.core.request import ToolCall, ToolSpec
from mlxcli.server.providers import common
from mlxcli.server.validate import Obj, objects

log = logging.getLogger("mlxcli.server")

MAX_TOOLS = 128
HOSTED = (
    "web_search", "web_search_preview", "web_search_2025_08_26", "web_search_preview_2025_03_11", "file_search",
    "code_interpreter", "image_generation", "mcp", "computer", "computer_use_preview", "tool_search",
)
_logged: set[str] = set()  # hosted types already reported

SHELL_TOOLS = {
    "local_shell": ToolSpec(
        "local_shell",
        "Run a command on the user's machine; the result is its output.",
        {"type": "object", "properties": {
            "command": {"type": "array", "items": {"type": "string"}, "description": "argv, e.g. [\"ls\", \"-la\"]"},
            "working_directory": {"type": "string"}, "timeout_ms": {"type": "integer"},
        }, "required": ["command"]},
    ),
    "shell": ToolSpec(
        "shell",
        "Run shell commands on the user's machine; the result is their output.",
        {"type": "object", "properties": {
            "commands": {"type": "array", "items": {"type": "string"}, "description": "command lines, run in order"},
            "timeout_ms": {"type": "integer"},
        }, "required": ["commands"]},
    ),
}
CALL_TYPES = {"local_shell": "local_shell_call", "shell": "shell_call"}


def flat_name(namespace: str, name: str) -> str:
    """Codex's flat name of a namespaced tool (``ToolName::canonical_flat_name``)."""
    return f"{namespace.rstrip('_')}__{name.lstrip('_')}"


def tools(o: Obj) -> tuple[list[ToolSpec], dict[str, dict[str, Any]]]:
    """(the tools offered to the model, how a call to each that is not a plain function comes back: its shape)."""
    specs: list[ToolSpec] = []
    shapes: dict[str, dict[str, Any]] = {}
    for t in objects(o.list("tools", max_items=MAX_TOOLS)):
        kind = t.str("type", required=True)
        if kind in ("function", "custom"):
            specs.append(_tool(t, kind))
        elif kind == "namespace":
            namespace = t.str("name", required=True, max_len=64, allow_empty=False)
            for inner in objects(t.list("tools", required=True, max_items=MAX_TOOLS)):
                spec = _tool(inner, inner.str("type", required=True, choices=("function", "custom")), max_name=128)
                flat = flat_name(namespace, spec.name)
                shapes[flat] = {"namespace": namespace, "name": spec.name}
                spec.name = flat
                specs.append(spec)
        elif kind in SHELL_TOOLS:
            specs.append(SHELL_TOOLS[kind])
            shapes[kind] = {"type": CALL_TYPES[kind]}
        elif kind in HOSTED:
            if kind not in _logged:
                _logged.add(kind)
                log.info("tools: %r is a hosted tool this server cannot run: left out of the prompt", kind)
        else:
            raise InvalidRequest(f"Tool type {kind!r} is not supported by this server.", param=t.param("type"))
    if len(specs) > MAX_TOOLS:
        raise InvalidRequest(f"At most {MAX_TOOLS} tools, namespaces' tools included.", param="tools")
    return specs, shapes


def _tool(t: Obj, kind: str, max_name: int = 64) -> ToolSpec:
    return common.custom_tool(t) if kind == "custom" else common.tool(t, max_name=max_name)


# ---- calls: out as output items, back in as input items -----------------------


def output_item(item: dict[str, Any], shape: dict[str, Any] | None) -> dict[str, Any]:
    """A finished call item (``function_call`` or ``custom_tool_call``) in the shape its tool asks for."""
    if shape is None:
        return item
    if "namespace" in shape:
        return {**item, "name": shape["name"], "namespace": shape["namespace"]}
    args = _arguments(item.get("arguments", ""))
    base = {"id": item["id"], "type": shape["type"], "status": item["status"], "call_id": item["call_id"]}
    if shape["type"] == "local_shell_call":
        command = args.get("command")
        action = {"type": "exec", "command": _strings(command, shell=True), "env": {},
                  "working_directory": _str(args.get("working_directory")), "timeout_ms": _int(args.get("timeout_ms"))}
    else:
        action = {"commands": _strings(args.get("commands")), "timeout_ms": _int(args.get("timeout_ms")), "max_output_length": None}
    return {**base, "action": action}


def call_of(i: Obj, kind: str) -> ToolCall:
    """The call an input item (``function_call``, ``custom_tool_call``, ``local_shell_call``, ``shell_call``)
    records, under the name the model was offered."""
    if kind in ("local_shell_call", "shell_call"):
        action = i.obj("action", required=True)
        key = "command" if kind == "local_shell_call" else "commands"
        args = {key: action.raw(key) or []}
        return ToolCall(id=i.str("call_id", required=True, max_len=256), name=kind.removesuffix("_call"), arguments=json.dumps(args))
    custom = kind == "custom_tool_call"
    name = i.str("name", required=True, max_len=64)
    if (namespace := i.str("namespace", max_len=64)):
        name = flat_name(namespace, name)
    return ToolCall(
        id=i.str("call_id", required=True, max_len=256),
        name=name,
        arguments=i.str("input" if custom else "arguments", required=True),
        custom=custom,
    )


def call_from_output(item: dict[str, Any]) -> ToolCall | None:
    """The stored call of an output item this server wrote (None for a message or reasoning)."""
    kind = item["type"]
    if kind not in ("function_call", "custom_tool_call", "local_shell_call", "shell_call"):
        return None
    return call_of(Obj(item, "output"), kind)


def _arguments(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _strings(value: Any, *, shell: bool = False) -> list[str]:
    """A command as a list of strings: a model that writes one string gets it run by the shell."""
    if isinstance(value, str):
        return ["bash", "-lc", value] if shell else [value]
    return [str(v) for v in value] if isinstance(value, list) else []


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None

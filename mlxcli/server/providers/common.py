"""Wire helpers several providers share, written once: model names, sampling fields, stop lists,
tools, named tool choices, text and image parts. Each reads through ``validate.Obj``, so every error is
a 400 naming the parameter."""

from __future__ import annotations

import json
import math
import re
from typing import Any, Callable, Iterable, Mapping

from mlxcli.core.errors import InvalidRequest
from mlxcli.core.request import SAMPLING_BOUNDS, Grammar, ImageInput, ToolSpec
from mlxcli.server.images import check_count
from mlxcli.server.validate import Obj, objects

MAX_INT = 2**31 - 1  # the widest integer a client may send where a field has no upper bound
MAX_STOP = 16
MAX_STOP_LEN = 256
MAX_PARTS = 1024
EMPTY_SCHEMA = {"type": "object", "properties": {}}


def model_name(o: Obj, *, required: bool = False) -> str | None:
    """The requested model: echoed back, matched against served names; never a path."""
    return o.str("model", required=required, max_len=256, allow_empty=not required, printable=True)


def sampling_fields(o: Obj, names: Iterable[str] | Mapping[str, str], **highest: float) -> dict[str, Any]:
    """Sampling fields by their neutral names, within ``SAMPLING_BOUNDS`` (``highest`` narrows a bound).

    ``names``: neutral names, or a mapping of neutral name → the field that holds it on the wire.
    """
    keys = names if isinstance(names, Mapping) else {name: name for name in names}
    values: dict[str, Any] = {}
    for name, key in keys.items():
        kind, lo, hi = SAMPLING_BOUNDS[name]
        hi = highest.get(name, hi)
        if kind is int:
            values[name] = o.int(key, lo=int(lo), hi=MAX_INT if hi == math.inf else int(hi))
        else:
            values[name] = o.num(key, lo=lo, hi=hi)
    return values


def max_tokens(o: Obj, key: str, *, required: bool = False) -> int | None:
    """A token limit (the engine caps it at the room left in the context window)."""
    return o.int(key, required=required, lo=1, hi=MAX_INT)


def stop(o: Obj, key: str) -> list[str]:
    return o.str_or_list(key, max_items=MAX_STOP, max_len=MAX_STOP_LEN)


def tool(o: Obj, *, schema: str = "parameters", schema_required: bool = False, max_name: int = 64) -> ToolSpec:
    """A function tool: ``name`` (letters, digits, ``_`` and ``-``), ``description``, its JSON Schema."""
    name = o.str("name", required=True)
    pattern = rf"^[a-zA-Z0-9_-]{{1,{max_name}}}$"
    if not re.match(pattern, name):
        raise InvalidRequest(f"Invalid value for '{o.param('name')}': must match {pattern}.", param=o.param("name"))
    parameters = o.obj(schema, required=schema_required)
    return ToolSpec(
        name=name,
        description=o.str("description"),
        parameters=parameters.data if parameters else dict(EMPTY_SCHEMA),
        strict=o.bool("strict", default=False),
        param=o.param(schema),
    )


def json_schema(o: Obj, key: str = "schema", *, required: bool = True) -> Grammar:
    """A JSON Schema output format: the object at ``key`` as a constraint that names its parameter."""
    schema = o.obj(key, required=required)
    return Grammar("json", param=o.param(key), schema=schema.data if schema is not None else None)


def custom_tool(o: Obj) -> ToolSpec:
    """A custom tool (``{"name", "description", "format"}``): free text in, or text in its grammar."""
    spec = tool(o)
    spec.custom, spec.param = True, o.param("format")
    fmt = o.obj("format")
    kind = fmt.str("type", required=True, choices=("text", "grammar")) if fmt is not None else "text"
    if kind == "grammar":
        syntax = fmt.str("syntax", required=True, choices=("lark", "regex"))
        definition = fmt.str("definition", required=True, allow_empty=False)
        spec.grammar = Grammar(syntax, param=fmt.param("definition"), definition=definition)
    return spec


def arguments_object(arguments: str) -> dict[str, Any]:
    """A tool call's arguments (JSON text) as an object, for APIs that send them as one; the
    tool-call parser guarantees a JSON object."""
    try:
        value = json.loads(arguments) if arguments.strip() else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def named_tool(name: str, tools: list[ToolSpec], param: str) -> dict[str, str]:
    """The neutral tool_choice that forces ``name``, which must be one of ``tools``."""
    if name not in {t.name for t in tools}:
        raise InvalidRequest(f"tool_choice names {name!r}, which is not in 'tools'.", param=param)
    return {"name": name}


def text(
    o: Obj,
    key: str,
    parts: Mapping[str, str],
    refuse: Callable[[Obj, str], InvalidRequest],
    *,
    required: bool = True,
) -> str | None:
    """A string, or a list of parts joined by newlines: ``parts`` maps each accepted part type to the
    field holding its text; ``refuse(part, type)`` is the error for any other type."""
    return content(o, key, parts, {}, refuse, required=required)[0]


def content(
    o: Obj,
    key: str,
    parts: Mapping[str, str],
    images: Mapping[str, Callable[[Obj], ImageInput]],
    refuse: Callable[[Obj, str], InvalidRequest],
    *,
    required: bool = True,
) -> tuple[str | None, list[ImageInput]]:
    """``text``, and the images of the part types in ``images`` (each read by its function)."""
    value = o.raw(key)
    if value is None:
        if required:
            raise InvalidRequest(f"Missing required parameter: '{o.param(key)}'.", param=o.param(key), code="missing_required_parameter")
        return None, []
    if isinstance(value, str):
        return o.str(key), []
    texts, found = [], []
    for part in objects(o.list(key, max_items=MAX_PARTS)):
        kind = part.str("type", required=True)
        if kind in images:
            found.append(images[kind](part))
            check_count(len(found), o.param(key))
        elif kind in parts:
            texts.append(part.str(parts[kind], required=True))
        else:
            raise refuse(part, kind)
    return "\n".join(texts), found


def text_only(part: Obj, kind: str) -> InvalidRequest:
    """The refusal of a content part a text-only model cannot take."""
    return InvalidRequest(f"Content part type {kind!r} is not supported by this model (text only).", param=part.param("type"))

"""Stream framing: server-sent events and NDJSON lines, and the JSON inside them."""

from __future__ import annotations

from typing import Any, Iterable, Iterator

import orjson

from mlxcli.client.errors import BadResponse

Frame = tuple[str | None, str]  # (event name, data)


def sse_events(lines: Iterable[str]) -> Iterator[Frame]:
    """(event name, data) per server-sent event.

    Data lines are joined with newlines; comments (``: keep-alive``), ``id:`` and ``retry:`` lines
    and events without data are skipped; an event is dispatched on a blank line (and at the end).
    """
    name: str | None = None
    data: list[str] = []
    for line in lines:
        line = line.rstrip("\r")
        if not line:
            if data:
                yield name, "\n".join(data)
            name, data = None, []
            continue
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field == "event":
            name = value
        elif field == "data":
            data.append(value)
        # "" (a comment), "id", "retry" and unknown fields carry nothing we use
    if data:
        yield name, "\n".join(data)


def ndjson_lines(lines: Iterable[str]) -> Iterator[Frame]:
    """One frame per non-blank line of newline-delimited JSON (Ollama's streams); no event names."""
    for line in lines:
        line = line.strip()
        if line:
            yield None, line


FRAMINGS = {"sse": sse_events, "ndjson": ndjson_lines}


def json_payload(data: str) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        raise BadResponse(f"the server sent something that is not JSON: {data[:200]!r}") from None


def arguments_object(text: str) -> dict[str, Any]:
    """A tool call's arguments (JSON text) as an object, for APIs that send them as one ({} if they are not one)."""
    try:
        value = orjson.loads(text) if text.strip() else {}
    except orjson.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def count(value: Any) -> int:
    """A token count from a usage object: an int, else 0."""
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def obj(value: Any) -> dict[str, Any]:
    """``value`` if it is a JSON object, else an empty one (fields servers may send as null)."""
    return value if isinstance(value, dict) else {}

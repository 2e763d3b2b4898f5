"""The APIs the client speaks, by the name users pick them with (``--api chat|responses|anthropic|ollama``).

Each is a module with: ``NAME``, ``TITLE``, ``PATH`` (from the server root), ``FRAMING``
(``sse`` or ``ndjson``), ``headers(api_key)``, ``unsupported(request)`` (the request fields it
cannot express), ``body(request, model)`` and a ``Reader`` class: ``feed(event name, data)`` →
neutral events, ``done`` after the terminal event, ``end()`` when the stream ends before it,
``usage_reported`` once the server gave its token counts.
"""

from __future__ import annotations

from types import ModuleType
from typing import Iterable, Protocol

from mlxcli.client import anthropic, ollama, openai_chat, openai_responses
from mlxcli.core.events import Event

APIS: dict[str, ModuleType] = {m.NAME: m for m in (openai_chat, openai_responses, anthropic, ollama)}
NAMES = tuple(APIS)


class Reader(Protocol):
    done: bool
    usage_reported: bool

    def feed(self, name: str | None, data: str) -> Iterable[Event]: ...

    def end(self) -> Iterable[Event]: ...


def api(name: str) -> ModuleType:
    try:
        return APIS[name]
    except KeyError:
        raise ValueError(f"unknown API {name!r}: choose from {', '.join(NAMES)}") from None


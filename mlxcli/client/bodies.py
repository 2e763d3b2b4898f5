"""What every API's request body is written from: the sampling fields it can express, the leading system text."""

from __future__ import annotations

from mlxcli.core.errors import InvalidRequest
from mlxcli.core.request import ChatRequest, Message


def unsupported(request: ChatRequest, fields: tuple[str, ...]) -> list[str]:
    """The sampling ``fields`` the request sets that an API has no field for."""
    return [name for name in fields if getattr(request.sampling, name) not in (None, [], False)]


def refuse_unsupported(request: ChatRequest, fields: tuple[str, ...], title: str) -> None:
    """Refuse before sending, rather than leave out what the user asked for."""
    missing = unsupported(request, fields)
    if missing:
        raise InvalidRequest(f"the {title} API has no {', '.join(missing)}")


def leading_system(messages: list[Message]) -> tuple[list[str], list[Message]]:
    """(the texts of the system messages the conversation starts with, the messages after them)."""
    rest = list(messages)
    texts = []
    while rest and rest[0].role == "system":
        texts.append(rest.pop(0).content or "")
    return texts, rest

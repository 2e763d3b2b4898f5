"""The provider contract: what one wire format (OpenAI, Anthropic, Azure, ...) gives the generic server.

A provider module defines ``PROVIDER`` and is listed in ``providers/__init__.py``; nothing else
in ``server/`` names a wire format. ``create_app`` adds each provider's routes and middleware;
every error on a path the provider owns (its ``prefixes``: the longest match wins) is written in
its shape, including errors raised before routing and waitress's own protocol errors.

For a chat route, the provider's ``parse(body)`` returns a ``Call``: the neutral request plus
everything the provider needs to answer it (ids, echoed fields, stream options), typed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterable, Protocol

from mlxcli.core.collect import Completion
from mlxcli.core.errors import MlxcliError
from mlxcli.core.request import ChatRequest
from mlxcli.server.framing import SSE, Framing
from mlxcli.server.stream import StreamEncoder

if TYPE_CHECKING:
    from mlxcli.server.context import ServerContext
    from mlxcli.store import Turn


class Call(Protocol):
    """One parsed chat request, ready to be answered."""

    request: ChatRequest
    stream: bool
    store: bool | None  # None: not said; the server's --store-chat decides

    def response(self, completion: Completion, model: str) -> dict[str, Any]:
        """The JSON answer of a finished generation (``model``: the name to echo)."""
        ...

    def encoder(self, model: str, prompt_tokens: int) -> StreamEncoder:
        """The encoder of a streamed answer."""
        ...

    def turn(self, completion: Completion, model: str) -> "Turn | None":
        """What to store of a finished answer (asked only when the exchange is to be stored)."""
        ...


@dataclass(frozen=True)
class Route:
    template: str  # a Falcon URI template
    resource: object
    suffix: str | None = None  # Falcon's responder suffix (on_get_<suffix>)


@dataclass(frozen=True)
class Provider:
    name: str
    prefixes: tuple[str, ...]  # the paths it owns: their errors take its shape
    error_body: Callable[[MlxcliError], dict[str, Any]]
    error_status: Callable[[MlxcliError], int] = lambda err: err.status
    framing: Framing = SSE
    routes: Callable[["ServerContext"], Iterable[Route]] = lambda ctx: ()
    middleware: Callable[["ServerContext"], Iterable[object]] = lambda ctx: ()  # runs before routing

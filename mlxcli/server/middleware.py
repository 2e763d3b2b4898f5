"""Cross-cutting HTTP concerns, applied to every route (including routes added later).

In order: request context (id, the path as sent, the client's disconnect check),
the access log, the Host check (DNS rebinding), CORS, API keys, and admission
control (overload). A refusal is raised as a neutral error, so Falcon's error
handler writes it in the shape of the API that was called.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import threading
import time
from typing import Any, Callable, Iterable, Iterator

import falcon

from mlxcli.core.errors import AuthenticationFailed, Overloaded, PermissionDenied
from mlxcli.core.events import Finish
from mlxcli.core.request import new_id
from mlxcli.server import disconnect

log = logging.getLogger("mlxcli.access")

# Paths open without an API key (health checks from load balancers and orchestrators); the server
# adds the web page's files (a browser cannot send a key to load them) and, if told, /metrics.
OPEN_PATHS = frozenset({"/", "/health"})  # the root says only that a server runs (and sends a browser to /ui)


class RequestContext:
    """Request id, start time, the path as sent (errors take the shape of its provider), the disconnect check."""

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        req.context.started = time.perf_counter()
        req.context.path = req.path  # as the client sent it, before any route rewriting
        req.context.request_id = new_id("req_", 16)
        req.context.streaming = False
        disconnect.current.set(disconnect.client_disconnected(req))
        resp.set_header("X-Request-Id", req.context.request_id)


class AccessLog:
    """One line per request: id, route, status, the API of a chat request, tokens and duration.

    Streaming responses log when their stream ends (see ``finish_stream``).
    """

    def process_response(self, req: falcon.Request, resp: falcon.Response, resource, req_succeeded: bool) -> None:
        if not req.context.get("streaming"):
            write(req, resp.status, req.context.get("usage_tokens"))


def write(req: falcon.Request, status, tokens: str | None) -> None:
    started = req.context.get("started", time.perf_counter())
    log.info(
        "%s %s %s %s api=%s tokens=%s %.0fms",
        req.context.get("request_id", "-"),
        req.method,
        req.context.get("path", req.path),
        str(status).split()[0],
        req.context.get("api") or "-",
        tokens or "-",
        (time.perf_counter() - started) * 1000,
    )


def usage_tokens(finish: Finish | None) -> str | None:
    if finish is None:
        return None
    return f"{finish.usage.prompt_tokens}+{finish.usage.completion_tokens}"


def finish_stream(req: falcon.Request, status: int):
    """The callback a streaming response calls when its stream ends."""

    def done(finish: Finish | None) -> None:
        write(req, status, usage_tokens(finish) if finish else "aborted")

    return done


# ---- Host check ------------------------------------------------------------


def is_loopback(host: str) -> bool:
    """Whether a bind address or Host name is this machine only."""
    host = host.strip("[]").rstrip(".").lower()
    if host == "localhost" or host.endswith(".localhost"):  # RFC 6761: browsers resolve these to loopback
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def host_name(header: str) -> str:
    """``example.com:8000`` → ``example.com``; ``[::1]:8000`` → ``::1``."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1 : header.find("]")] if "]" in header else header
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


class HostCheck:
    """The DNS-rebinding defence: a server bound to loopback answers only loopback Host names.

    A web page can point its own domain at 127.0.0.1 and then call the server as
    "same origin"; its requests still carry that domain in ``Host``. Extra names
    (a reverse proxy's) come from ``allowed_hosts``; ``*`` turns the check off.
    A server bound to another address checks only when ``allowed_hosts`` is set.
    """

    def __init__(self, bound_host: str, allowed_hosts: Iterable[str]):
        allowed = {host_name(h) for h in allowed_hosts if h.strip()}
        self.allowed = allowed
        self.enabled = "*" not in allowed and (is_loopback(bound_host) or bool(allowed))

    def allows(self, header: str) -> bool:
        name = host_name(header)
        return name in self.allowed or is_loopback(name)

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        header = req.get_header("Host")
        if self.enabled and header is not None and not self.allows(header):  # browsers always send Host
            raise PermissionDenied(
                f"Host {header!r} is not allowed: this server answers requests for localhost and the "
                "names given with --allowed-hosts only.",
                code="host_not_allowed",
            )


# ---- CORS ------------------------------------------------------------------


def origin_allowed(origin: str, patterns: Iterable[str]) -> bool:
    """``*``, an exact origin, or ``scheme://host:*`` for any port (or none)."""
    for pattern in patterns:
        if pattern in ("*", origin):
            return True
        if pattern.endswith(":*"):
            base = pattern[:-2]
            port = origin[len(base) + 1 :] if origin.startswith(base + ":") else None
            if origin == base or (port and port.isdigit()):
                return True
    return False


def same_origin(origin: str, host: str | None) -> bool:
    """Whether ``origin`` names this server as the request reached it (its ``Host``). The scheme is
    left out: behind a TLS proxy the page is https and this server http."""
    return host is not None and origin.partition("://")[2].lower() == host.strip().lower()


class Cors:
    """Cross-origin requests from allowed origins only; preflights answered here, without an API key.

    A request carrying a disallowed ``Origin`` is refused (403) before any work:
    browsers send some cross-origin POSTs without a preflight, and the answer
    being unreadable would not stop the generation.

    A request from the server's own origin (the /ui page, as the browser reached it) is not
    cross-origin, when ``trust_host``: the Host check vetted the name, or an API key is required
    (a DNS-rebinding page is an origin of its own, without the key the real page keeps).
    """

    METHODS = "GET, POST, DELETE, OPTIONS"
    EXPOSED = "X-Request-Id, Retry-After"

    def __init__(self, origins: Iterable[str], *, trust_host: bool = False):
        self.origins = [o.strip() for o in origins if o.strip()]
        self.any = "*" in self.origins
        self.trust_host = trust_host

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        origin = req.get_header("Origin")
        if origin is None or (self.trust_host and same_origin(origin, req.get_header("Host"))):
            return
        if not origin_allowed(origin, self.origins):
            raise PermissionDenied(
                f"Origin {origin!r} is not allowed (start the server with --cors-origins to allow it).",
                code="origin_not_allowed",
            )
        if req.method == "OPTIONS" and req.get_header("Access-Control-Request-Method"):
            resp.status = falcon.HTTP_200
            resp.set_header("Access-Control-Allow-Methods", self.METHODS)
            resp.set_header("Access-Control-Allow-Headers", req.get_header("Access-Control-Request-Headers") or "*")
            resp.set_header("Access-Control-Max-Age", "600")
            if req.get_header("Access-Control-Request-Private-Network"):
                resp.set_header("Access-Control-Allow-Private-Network", "true")
            resp.complete = True  # no routing, no auth: browsers never send credentials on a preflight

    def process_response(self, req: falcon.Request, resp: falcon.Response, resource, req_succeeded: bool) -> None:
        origin = req.get_header("Origin")
        if origin is None or not origin_allowed(origin, self.origins):
            return
        resp.set_header("Access-Control-Allow-Origin", "*" if self.any else origin)
        resp.set_header("Access-Control-Expose-Headers", self.EXPOSED)
        if not self.any:
            resp.append_header("Vary", "Origin")


# ---- API keys --------------------------------------------------------------


def presented_keys(req: falcon.Request) -> list[str]:
    """Keys in ``Authorization: Bearer`` (OpenAI), ``api-key`` (Azure) and ``x-api-key`` (Anthropic)."""
    keys = []
    authorization = req.get_header("Authorization") or ""
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        keys.append(token.strip())
    for header in ("api-key", "x-api-key"):
        value = (req.get_header(header) or "").strip()
        if value:
            keys.append(value)
    return keys


class ApiKeyAuth:
    """When keys are configured, every route but ``open_paths`` needs one of them."""

    def __init__(self, keys: Iterable[str], open_paths: Iterable[str] = OPEN_PATHS):
        self.keys = [k.encode() for k in keys if k]
        self.open_paths = frozenset(open_paths)

    def accepts(self, offered: list[str]) -> bool:
        # compare_digest against every key: no early exit that would time the match
        results = [hmac.compare_digest(o.encode(), k) for o in offered for k in self.keys]
        return any(results)

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        if not self.keys or req.method == "OPTIONS" or req.path in self.open_paths:
            return
        offered = presented_keys(req)
        if not offered:
            raise AuthenticationFailed(
                "Missing API key: send it as 'Authorization: Bearer <key>' (or in an 'x-api-key' or 'api-key' header)."
            )
        if not self.accepts(offered):
            raise AuthenticationFailed("Incorrect API key provided.")


# ---- admission control -----------------------------------------------------


class Admission:
    """At most ``limit`` POST requests in flight, from routing to the end of their response body.

    waitress hands requests to a fixed pool of worker threads and queues the rest
    out of our sight, without bound. Refusing here, with worker threads to spare
    (``ServerSettings.worker_threads``), keeps that queue empty: a generation
    request either gets a slot or an immediate 503 (Anthropic: 529), and cheap
    requests (``/health``, listings) always find a free thread.
    """

    def __init__(self, limit: int):
        self.limit = limit
        self.in_flight = 0
        self._lock = threading.Lock()

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        if req.method != "POST":
            return
        with self._lock:
            if self.in_flight >= self.limit:
                raise Overloaded(f"The server is busy ({self.in_flight} requests in progress); retry shortly.")
            self.in_flight += 1
        req.context.admitted = True

    def process_response(self, req: falcon.Request, resp: falcon.Response, resource, req_succeeded: bool) -> None:
        if not req.context.get("admitted"):
            return
        req.context.admitted = False
        if resp.stream is not None:
            resp.stream = ReleaseOnClose(resp.stream, self._release)  # a streaming answer holds its slot
        else:
            self._release()

    def _release(self) -> None:
        with self._lock:
            self.in_flight -= 1


class ReleaseOnClose:
    """A response body that calls ``release`` once when the server closes it."""

    def __init__(self, body: Iterable[bytes], release: Callable[[], None]):
        self._body = body
        self._frames: Iterator[bytes] = iter(body)
        self._release: Callable[[], None] | None = release

    def __iter__(self) -> "ReleaseOnClose":
        return self

    def __next__(self) -> bytes:
        return next(self._frames)

    def close(self) -> None:
        try:
            close: Any = getattr(self._body, "close", None)
            if close is not None:
                close()
        finally:
            release, self._release = self._release, None
            if release is not None:
                release()

"""Cross-cutting HTTP concerns: request ids and the access log."""

from __future__ import annotations

import logging
import time

import falcon

from mlxcli.core.events import Finish
from mlxcli.core.request import new_id

log = logging.getLogger("mlxcli.access")


class AccessLog:
    """One line per request: id, route, status, tokens and duration.

    Streaming responses log when their stream ends (see ``finish_stream``).
    """

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        req.context.started = time.perf_counter()
        req.context.path = req.path  # as the client sent it, before any route rewriting
        req.context.request_id = new_id("req_", 16)
        req.context.streaming = False
        resp.set_header("X-Request-Id", req.context.request_id)

    def process_response(self, req: falcon.Request, resp: falcon.Response, resource, req_succeeded: bool) -> None:
        if not req.context.get("streaming"):
            write(req, resp.status, req.context.get("usage_tokens"))


def write(req: falcon.Request, status, tokens: str | None) -> None:
    started = req.context.get("started", time.perf_counter())
    log.info(
        "%s %s %s %s tokens=%s %.0fms",
        req.context.get("request_id", "-"),
        req.method,
        req.context.get("path", req.path),
        str(status).split()[0],
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

"""Malformed requests the mix sends now and then: each must get its API's error shape and status (a 4xx
naming the parameter where the API names one), never a 5xx, a hang or a traceback."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import httpx

from tests.support.soak.calls import PATHS, Lost, Overload, Wrong, check_error_shape
from tests.support.soak.record import Recorder

USER = [{"role": "user", "content": "x"}]
NOT_AN_IMAGE = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]}]


@dataclass(frozen=True)
class Case:
    api: str
    body: Any  # a JSON value, or bytes sent as they are
    status: int
    param: str | None = None  # the parameter an OpenAI-shaped error names
    path: str | None = None  # default: the API's chat path


CASES = [
    Case("chat", b'{"model": "scripted", "messages": [', 400),
    Case("chat", {"model": "scripted", "messages": "hi"}, 400, "messages"),
    Case("chat", {"model": "scripted", "messages": USER, "temperature": "hot"}, 400, "temperature"),
    Case("chat", {"model": "scripted", "messages": USER, "max_tokens": -5}, 400, "max_tokens"),
    Case("chat", {"model": "no-such-model", "messages": USER}, 404, "model"),
    Case("chat", {"model": "scripted", "messages": [{"role": "wizard", "content": "x"}]}, 400, "messages[0].role"),
    Case("chat", {"model": "soak-bert", "messages": USER}, 400, "model"),
    Case("chat", {"model": "soak-vl", "messages": NOT_AN_IMAGE}, 400),
    Case("chat", {"model": "scripted", "messages": USER, "response_format": {
        "type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "bogus"}}}}, 400),
    Case("anthropic", {"model": "scripted", "messages": USER}, 400),
    Case("anthropic", b"not json", 400),
    Case("anthropic", {"model": "scripted", "max_tokens": 10, "messages": [{"role": "assistant", "content": [{"type": "tool_use"}]}]}, 400),
    Case("responses", {"model": "scripted", "input": "x", "previous_response_id": "resp_nope"}, 400, "previous_response_id"),
    Case("responses", {"model": "scripted", "input": 42}, 400, "input"),
    Case("embeddings", {"model": "soak-bert", "input": []}, 400, "input"),
    Case("embeddings", {"model": "soak-bert", "input": [[1, 2, "x"]]}, 400, "input[0]"),
    Case("embeddings", {"model": "scripted", "input": "x"}, 400),
    Case("ollama", {"model": "scripted", "messages": "x"}, 400),
    Case("azure", {"messages": 5}, 400),
]


def check(http: httpx.Client, case: Case, rec: Recorder) -> None:
    raw = case.body if isinstance(case.body, bytes) else json.dumps(case.body).encode()
    try:
        r = http.post(case.path or PATHS[case.api], content=raw, headers={"content-type": "application/json"})
    except httpx.TransportError as exc:
        raise Lost(f"malformed {case.api}: {exc!r}") from exc
    overload = 529 if case.api == "anthropic" else 503
    if r.status_code == overload and r.headers.get("retry-after"):
        raise Overload(case.api, r.status_code, r.headers["retry-after"])  # a burst took every slot
    rec.request("malformed", r.status_code)
    check_error_shape(case.api, r.status_code, r.text)
    if r.status_code != case.status:
        raise Wrong("malformed", f"{case.api} {raw[:80]!r}: {r.status_code}, expected {case.status}: {r.text[:200]}")
    if case.param is not None and r.json()["error"].get("param") != case.param:
        raise Wrong("malformed", f"{case.api} {raw[:80]!r}: param {r.json()['error'].get('param')!r}, expected {case.param!r}")

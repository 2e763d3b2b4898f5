"""Ollama's ``POST /api/embed`` (``input``: a string or a list of them → ``embeddings``) and the older
``POST /api/embeddings`` (``prompt`` → ``embedding``), answered by the engine's embedding models as
``/v1/embeddings`` is.

``truncate`` (default true, as on Ollama) cuts an input over the model's window to fit it; false
makes it a 400, as the legacy route always does. ``dimensions`` keeps the first N components.
``keep_alive`` feeds the idle-unload timer; ``options`` are checked as for chat and change nothing
here. An empty ``input`` loads the model (or, with ``keep_alive`` 0, unloads it) and is answered with
no vectors, as Ollama answers it; ``load_duration`` is the time that took.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import falcon

from mlxcli.core.embeddings import MAX_INPUTS, EmbeddingRequest, Embeddings
from mlxcli.core.errors import InvalidRequest
from mlxcli.server.context import ServerContext
from mlxcli.server.http import send_json
from mlxcli.server.providers.ollama.models import load_model, served_status
from mlxcli.server.providers.ollama.request import keep_alive, model_names, parse_options, read_body
from mlxcli.server.validate import MAX_STRING, Obj


@dataclass
class EmbedCall:
    request: EmbeddingRequest
    model: str  # echoed as the client wrote it
    legacy: bool  # /api/embeddings: one ``prompt``, one ``embedding``
    started: float = field(default_factory=time.perf_counter)
    load_seconds: float | None = None  # an empty input's load of the model (Ollama omits it otherwise)

    def response(self, result: Embeddings | None) -> dict[str, Any]:
        vectors = result.vectors if result is not None else []
        if self.legacy:
            return {"embedding": vectors[0] if vectors else []}
        loaded = {"load_duration": max(1, int(self.load_seconds * 1e9))} if self.load_seconds is not None else {}
        return {
            "model": self.model,
            "embeddings": vectors,
            "total_duration": max(1, int((time.perf_counter() - self.started) * 1e9)),
            **loaded,
            "prompt_eval_count": result.prompt_tokens if result is not None else 0,
        }


def parse_embed(body: dict[str, Any]) -> EmbedCall:
    """Raises InvalidRequest naming the parameter."""
    o = Obj(body)
    raw = o.raw("input")
    if isinstance(raw, list):
        if len(raw) > MAX_INPUTS:
            raise InvalidRequest(f"'input' holds {len(raw)} inputs; the most a request may hold is {MAX_INPUTS}.", param="input")
        inputs = [_text(item, f"input[{i}]") for i, item in enumerate(raw)]
    else:
        inputs = [text] if (text := o.str("input", default="")) else []
    call = _call(o, inputs, listed=isinstance(raw, list), legacy=False)
    call.request.truncate = o.bool("truncate", default=True)
    call.request.dimensions = o.int("dimensions", lo=1)
    return call


def parse_legacy(body: dict[str, Any]) -> EmbedCall:
    o = Obj(body)
    prompt = o.str("prompt", default="")
    return _call(o, [prompt] if prompt else [], listed=False, legacy=True)


def _call(o: Obj, inputs: list[str], *, listed: bool, legacy: bool) -> EmbedCall:
    echo, model = model_names(o)
    parse_options(o)  # checked as chat checks them; none of them changes an embedding
    request = EmbeddingRequest(inputs, model=model, listed=listed, keep_alive=keep_alive(o))  # type: ignore[arg-type]
    return EmbedCall(request, echo, legacy)


def _text(item: Any, param: str) -> str:
    if not isinstance(item, str):
        raise InvalidRequest(f"Invalid type for '{param}': expected a string.", param=param)
    if len(item) > MAX_STRING:
        raise InvalidRequest(f"'{param}' is longer than {MAX_STRING} characters.", param=param)
    return item


class Embed:
    """``POST /api/embed`` or, with ``legacy``, ``/api/embeddings``."""

    def __init__(self, ctx: ServerContext, legacy: bool):
        self.ctx = ctx
        self.parse = parse_legacy if legacy else parse_embed

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        req.context.api = "ollama"  # for the access log
        call = self.parse(read_body(req, self.ctx.settings.max_body_bytes))
        request = call.request
        request.request_id = req.context.request_id
        status = served_status(self.ctx, request.model, "embedding")
        if status.kind != "embedding":
            raise InvalidRequest(f'"{call.model}" does not support embeddings', param="model")
        result = None
        if not request.inputs and not call.legacy:
            call.load_seconds = load_model(self.ctx, status.name, request.keep_alive)
        elif request.inputs:
            try:
                result, _ = self.ctx.embed(request, api="ollama")
            except InvalidRequest as err:  # the engine names the neutral field; the legacy route calls it prompt
                if call.legacy and err.param == "input":
                    raise InvalidRequest(err.message.replace("'input'", "'prompt'"), param="prompt") from err
                raise
            req.context.usage_tokens = str(result.prompt_tokens)
        send_json(resp, call.response(result))

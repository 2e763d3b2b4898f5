"""OpenAI Embeddings: ``POST /v1/embeddings`` (and Azure's routes, through ``api_routes`` and azure.py).

``input`` is a string, a list of strings, a list of token ids or a list of such lists; each is one
input, embedded on its own. Token ids are fed to the model as they are (special tokens included
only if the client put them there). Vectors come back as float arrays or, with
``encoding_format: "base64"`` (what the OpenAI SDKs ask for by default), as little-endian float32.
"""

from __future__ import annotations

import base64
import sys
from array import array
from dataclasses import dataclass
from typing import Any

import falcon

from mlxcli.core.embeddings import MAX_INPUTS, EmbeddingRequest, Embeddings
from mlxcli.core.errors import InvalidRequest
from mlxcli.server.context import ServerContext
from mlxcli.server.http import read_json, send_json
from mlxcli.server.providers import common
from mlxcli.server.providers.base import Provider
from mlxcli.server.validate import MAX_STRING, Obj, is_int

ENCODINGS = ("float", "base64")


@dataclass
class EmbeddingsCall:
    request: EmbeddingRequest
    encoding: str

    def response(self, result: Embeddings, model: str) -> dict[str, Any]:
        return {
            "object": "list",
            "data": [{"object": "embedding", "index": i, "embedding": self._encode(v)} for i, v in enumerate(result.vectors)],
            "model": model,
            "usage": {"prompt_tokens": result.prompt_tokens, "total_tokens": result.prompt_tokens},
        }

    def _encode(self, vector: list[float]) -> list[float] | str:
        if self.encoding == "float":
            return vector
        packed = array("f", vector)
        if sys.byteorder != "little":
            packed.byteswap()
        return base64.b64encode(packed.tobytes()).decode("ascii")


def parse(body: dict[str, Any]) -> EmbeddingsCall:
    """Raises InvalidRequest naming the parameter."""
    o = Obj(body)
    model = common.model_name(o)
    encoding = o.str("encoding_format", default="float", choices=ENCODINGS)
    dimensions = o.int("dimensions", lo=1)
    o.str("user", max_len=256)
    raw = o.raw("input")
    if raw is None:
        raise InvalidRequest("Missing required parameter: 'input'.", param="input", code="missing_required_parameter")
    listed = isinstance(raw, list) and bool(raw) and not is_int(raw[0])  # a list of token ids is one input
    items = raw if listed else [raw]
    if len(items) > MAX_INPUTS:
        raise InvalidRequest(f"'input' holds {len(items)} inputs; the most a request may hold is {MAX_INPUTS}.", param="input")
    inputs = [_input(item, f"input[{i}]" if listed else "input") for i, item in enumerate(items)]
    request = EmbeddingRequest(inputs, model=model, dimensions=dimensions, listed=listed)
    return EmbeddingsCall(request, encoding)  # type: ignore[arg-type]


def _input(item: Any, param: str) -> str | list[int]:
    """One input: a non-empty string, or a non-empty list of token ids."""
    if isinstance(item, str):
        if not item:
            raise InvalidRequest(f"'{param}' is an empty string; every input must have text.", param=param)
        if len(item) > MAX_STRING:
            raise InvalidRequest(f"'{param}' is longer than {MAX_STRING} characters.", param=param)
        return item
    if isinstance(item, list) and item and all(is_int(t) for t in item):
        if min(item) < 0:
            raise InvalidRequest(f"'{param}' holds the negative token id {min(item)}.", param=param)
        return item
    if isinstance(item, list) and not item:
        raise InvalidRequest(f"'{param}' is empty; send a string, a list of strings or a list of token ids.", param=param)
    raise InvalidRequest(
        f"Invalid type for '{param}': expected a string or a list of token ids (integers).", param=param, code="invalid_type"
    )


class Embed:
    """POST an embeddings request; a model named by the route (an Azure deployment) wins over the body's."""

    def __init__(self, ctx: ServerContext, provider: Provider):
        self.ctx = ctx
        self.provider = provider

    def on_post(self, req: falcon.Request, resp: falcon.Response, deployment: str | None = None) -> None:
        req.context.api = self.provider.name  # for the access log
        call = parse(read_json(req, self.ctx.settings.max_body_bytes))
        request = call.request
        request.request_id = req.context.request_id
        request.model = deployment or request.model
        result, served = self.ctx.embed(request, api=self.provider.name)
        req.context.usage_tokens = str(result.prompt_tokens)
        send_json(resp, call.response(result, request.model or served))  # the client's own name is echoed back

"""Stored responses: retrieve, delete and list the input items of what the Responses API stored."""

from __future__ import annotations

from typing import Any

import falcon

from mlxcli.core.errors import InvalidRequest, NotFound
from mlxcli.server.http import send_json
from mlxcli.server.providers.openai.response_object import text_part
from mlxcli.store import ConversationStore, StoredMessage, Turn
from mlxcli.store.records import image_json


def input_item_json(m: StoredMessage) -> dict[str, Any]:
    """A stored input message as the Responses item it came from (its images first, as the model saw them)."""
    pictures = [{"type": "input_image", "image_url": "data:image/png;base64," + image_json(i)["png"], "detail": "auto"}
                for i in m.images]
    text = [{"type": "input_text", "text": m.content}] if m.content else []
    if m.role == "tool":  # a plain string unless the tool showed images
        output: str | list = pictures + text if pictures else m.content or ""
        return {"id": m.id, "type": "function_call_output", "call_id": m.tool_call_id, "output": output, "status": "completed"}
    if m.role == "assistant" and m.tool_calls and not m.content:
        call = m.tool_calls[0]
        if call.custom:
            return {"id": m.id, "type": "custom_tool_call", "call_id": call.id, "name": call.name, "input": call.arguments,
                    "status": "completed"}
        return {"id": m.id, "type": "function_call", "call_id": call.id, "name": call.name,
                "arguments": call.arguments, "status": "completed"}
    if m.role == "assistant" and m.reasoning is not None and not m.content:
        return {"id": m.id, "type": "reasoning", "summary": [],
                "content": [{"type": "reasoning_text", "text": m.reasoning}], "status": "completed"}
    if m.role == "assistant":
        content = [text_part(m.content or "")]
    else:
        content = pictures + text if pictures else [{"type": "input_text", "text": m.content or ""}]
    return {"id": m.id, "type": "message", "role": m.role, "content": content, "status": "completed"}


class StoredResponses:
    """GET/DELETE a stored response and list its input items (under /v1 and Azure's routes alike)."""

    def __init__(self, store: ConversationStore):
        self.store = store

    def _turn(self, response_id: str) -> Turn:
        turn = self.store.get(response_id)
        if turn is None or turn.response is None:  # other front ends' turns are not Responses objects
            raise NotFound(f"Response with id '{response_id}' not found.", param="response_id")
        return turn

    def on_get(self, req: falcon.Request, resp: falcon.Response, response_id: str) -> None:
        turn = self._turn(response_id)
        if req.get_param("stream") not in (None, "", "false"):
            # OpenAI streams the events of a response still running in the background; this server's
            # responses are finished when stored, so there is nothing to stream (and JSON would look empty to an SSE reader).
            raise InvalidRequest(
                "'stream' is only for background responses, which this server does not run: retrieve the stored response without it.",
                param="stream",
            )
        send_json(resp, turn.response)

    def on_delete(self, req: falcon.Request, resp: falcon.Response, response_id: str) -> None:
        self._turn(response_id)
        if not self.store.delete(response_id):
            raise NotFound(f"Response with id '{response_id}' not found.", param="response_id")
        send_json(resp, {"id": response_id, "object": "response", "deleted": True})

    def on_get_input_items(self, req: falcon.Request, resp: falcon.Response, response_id: str) -> None:
        limit = _query_int(req, "limit", default=20, lo=1, hi=100)
        order = req.get_param("order") or "desc"
        if order not in ("asc", "desc"):
            raise InvalidRequest(f"Invalid value for 'order': expected 'asc' or 'desc', got {order!r}.", param="order")
        items = [input_item_json(m) for m in self._turn(response_id).input]
        if order == "desc":
            items.reverse()
        after = req.get_param("after")
        if after:
            position = next((n for n, item in enumerate(items) if item["id"] == after), None)
            if position is None:
                raise InvalidRequest(f"Item with id '{after}' is not an input item of '{response_id}'.", param="after")
            items = items[position + 1 :]
        page = items[:limit]
        send_json(
            resp,
            {
                "object": "list",
                "data": page,
                "first_id": page[0]["id"] if page else None,
                "last_id": page[-1]["id"] if page else None,
                "has_more": len(items) > limit,
            },
        )


def _query_int(req: falcon.Request, name: str, *, default: int, lo: int, hi: int) -> int:
    raw = req.get_param(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise InvalidRequest(f"Invalid value for '{name}': expected an integer, got {raw!r}.", param=name) from None
    if not lo <= value <= hi:
        raise InvalidRequest(f"Invalid value for '{name}': must be between {lo} and {hi}, got {value}.", param=name)
    return value

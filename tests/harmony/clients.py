"""One question to a running server over Chat Completions, Responses or Anthropic Messages, streamed or not,
asked with the official SDK (and, streamed, also read raw and grammar-checked), its answer in one shape.

Every raw body is checked for Harmony markers: none may reach a client, in any field.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import anthropic
import httpx
import openai

from tests.support.anthropic_stream import check_stream
from tests.support.harmony import SPECIAL_TOKENS
from tests.support.streams import check_chat_stream, check_responses_stream

CHAT, RESPONSES, ANTHROPIC = "chat", "responses", "anthropic"
APIS = [CHAT, RESPONSES, ANTHROPIC]
FINISH = {"end_turn": "stop", "tool_use": "tool_calls", "max_tokens": "length"}  # Anthropic's → Chat's


@dataclass
class Answer:
    content: str
    reasoning: str
    calls: list[tuple[str, dict[str, Any]]]
    finish: str  # stop | tool_calls | length
    reasoning_tokens: int | None  # None: the API does not count them (Anthropic)
    ids: list[str] = field(default_factory=list)  # the calls' ids
    wire: dict[str, Any] = field(default_factory=dict)  # the message or response as the API returned it


def tools_for(api: str, tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """OpenAI-style function definitions (name, description, parameters) in each API's shape."""
    if api == CHAT:
        return [{"type": "function", "function": t} for t in tools]
    if api == RESPONSES:
        return [{"type": "function", **t} for t in tools]
    return [{"name": t["name"], "description": t["description"], "input_schema": t["parameters"]} for t in tools]


def no_markers(raw: str) -> str:
    found = [m for m in SPECIAL_TOKENS if m in raw]
    assert not found, f"Harmony markers {found} reached the client: {raw[:2000]}"
    return raw


def ask(server, api: str, stream: bool, **body: Any) -> Answer:
    """``body`` in the API's own fields (``messages`` / ``input``, ``tools`` already in its shape)."""
    body = {"model": "m", **body}
    if api == CHAT:
        return _chat(server, stream, body)
    if api == RESPONSES:
        return _responses(server, stream, body)
    return _anthropic(server, stream, {"max_tokens": 512, **body})


def _post(server, path: str, body: dict[str, Any]) -> str:
    with httpx.stream("POST", server.url + path, json={**body, "stream": True}, timeout=60) as r:
        assert r.status_code == 200, r.read()
        return no_markers(r.read().decode())


def _chat(server, stream: bool, body: dict[str, Any]) -> Answer:
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)
    if stream:
        checked = check_chat_stream(_post(server, "/v1/chat/completions", {**body, "stream_options": {"include_usage": True}}))
        with client.chat.completions.stream(**body) as s:  # the SDK's accumulator agrees
            final = s.get_final_completion().choices[0]
        calls = [(c["name"], json.loads(c["arguments"])) for c in checked["tool_calls"]]
        assert [(c.function.name, json.loads(c.function.arguments)) for c in final.message.tool_calls or []] == calls
        assert (final.message.content or "") == checked["content"] and final.finish_reason == checked["finish_reason"]
        wire = {"content": checked["content"], "reasoning_content": checked["reasoning_content"], "tool_calls": checked["tool_calls"]}
        return Answer(
            checked["content"], checked["reasoning_content"], calls, checked["finish_reason"],
            checked["usage"]["completion_tokens_details"]["reasoning_tokens"], [c["id"] for c in checked["tool_calls"]], wire,
        )
    raw = client.chat.completions.with_raw_response.create(**body)
    no_markers(raw.http_response.text)
    r = raw.parse()
    m = r.choices[0].message
    return Answer(
        m.content or "", getattr(m, "reasoning_content", None) or "",
        [(c.function.name, json.loads(c.function.arguments)) for c in m.tool_calls or []], r.choices[0].finish_reason,
        r.usage.completion_tokens_details.reasoning_tokens, [c.id for c in m.tool_calls or []], m.model_dump(),
    )


def _responses(server, stream: bool, body: dict[str, Any]) -> Answer:
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)
    if stream:
        response = check_responses_stream(_post(server, "/v1/responses", body))
        with client.responses.stream(**body) as s:
            sdk = s.get_final_response()
        assert [i.type for i in sdk.output] == [i["type"] for i in response["output"]]
    else:
        raw = client.responses.with_raw_response.create(**body)
        response = json.loads(no_markers(raw.http_response.text))
        assert raw.parse().id == response["id"]  # the SDK reads it
    items = response["output"]
    calls = [i for i in items if i["type"] == "function_call"]
    finish = "length" if response["status"] == "incomplete" else "tool_calls" if calls else "stop"
    return Answer(
        "".join(p["text"] for i in items if i["type"] == "message" for p in i["content"]),
        "".join(p["text"] for i in items if i["type"] == "reasoning" for p in i.get("content") or []),
        [(c["name"], json.loads(c["arguments"])) for c in calls], finish,
        response["usage"]["output_tokens_details"]["reasoning_tokens"], [c["call_id"] for c in calls], response,
    )


def _anthropic(server, stream: bool, body: dict[str, Any]) -> Answer:
    client = anthropic.Anthropic(base_url=server.url, api_key="unused", max_retries=0)
    if stream:
        checked = check_stream(_post(server, "/v1/messages", body))
        assert checked.error is None
        with client.messages.stream(**body) as s:
            sdk = s.get_final_message()
        message = checked.message
        assert [b.type for b in sdk.content] == [b["type"] for b in message["content"]]
    else:
        raw = client.messages.with_raw_response.create(**body)
        message = json.loads(no_markers(raw.http_response.text))
        assert raw.parse().id == message["id"]
    blocks = message["content"]
    uses = [b for b in blocks if b["type"] == "tool_use"]
    return Answer(
        "".join(b["text"] for b in blocks if b["type"] == "text"),
        "".join(b["thinking"] for b in blocks if b["type"] == "thinking"),
        [(b["name"], b["input"]) for b in uses], FINISH[message["stop_reason"]], None, [b["id"] for b in uses], message,
    )


def follow_up(api: str, history: Any, answer: Answer, results: list[str], question: str | None = None) -> dict[str, Any]:
    """The next request's conversation fields: ``history`` (the earlier ``messages``, or for Responses the
    answer's id), the answer as the client echoes it back, the results of its calls, then ``question``."""
    if api == RESPONSES:
        items = [{"type": "function_call_output", "call_id": i, "output": r} for i, r in zip(answer.ids, results)]
        items += [{"role": "user", "content": question}] if question else []
        return {"previous_response_id": answer.wire["id"], "input": items}
    if api == CHAT:
        echoed = {"role": "assistant", "content": answer.wire.get("content"), "reasoning_content": answer.reasoning or None}
        if answer.calls:
            echoed["tool_calls"] = [
                {"id": i, "type": "function", "function": {"name": n, "arguments": json.dumps(a)}}
                for i, (n, a) in zip(answer.ids, answer.calls)
            ]
        tail = [{"role": "tool", "tool_call_id": i, "content": r} for i, r in zip(answer.ids, results)]
        return {"messages": history + [echoed] + tail + ([{"role": "user", "content": question}] if question else [])}
    echoed = {"role": "assistant", "content": answer.wire["content"]}  # thinking (with its signature), text, tool_use
    content = [{"type": "tool_result", "tool_use_id": i, "content": r} for i, r in zip(answer.ids, results)]
    content += [{"type": "text", "text": question}] if question else []
    return {"messages": history + [echoed, {"role": "user", "content": content}]}

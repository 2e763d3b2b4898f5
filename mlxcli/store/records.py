"""What the store keeps: conversations made of turns, and their stable JSON form.

A *turn* is one request/answer exchange from any front end (an OpenAI response, a
chat completion, an Anthropic message, a `mlxcli chat` exchange): the messages
it added to the conversation, the assistant's answer, usage, model and times.
Turns chain through ``previous_id``; every turn reachable through that chain
belongs to one *conversation*.

The JSON written here is the archive format and the `mlxcli convo export`
format (documented in the README); keep it backwards compatible and bump
``FORMAT_VERSION`` if it ever has to change.
"""

from __future__ import annotations

import base64
import io
import time
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from mlxcli.core.collect import Completion
from mlxcli.core.events import Compaction, Usage
from mlxcli.core.request import ImageInput, Message, ToolCall, new_id

FORMAT = "mlxcli.conversation"
FORMAT_VERSION = 1

# Known values of Turn.source (free text: a new front end picks its own name).
SOURCES = ("responses", "chat.completions", "messages", "ollama.chat", "ollama.generate", "chat")


@dataclass
class StoredMessage(Message):
    """A neutral message with the id it is known by (Responses item ids, or a generated one)."""

    id: str = field(default_factory=lambda: new_id("msg_"))


@dataclass
class Turn:
    id: str  # the id the client saw (resp_…, chatcmpl-…, msg_…)
    source: str  # which API or front end recorded it, see SOURCES
    model: str
    input: list[StoredMessage]  # what this turn added (not the earlier history)
    output: list[StoredMessage]  # the assistant's answer, usually one message
    usage: Usage = field(default_factory=Usage)
    status: str = "completed"  # "completed" | "incomplete" (cut off by a token limit)
    previous_id: str | None = None  # the turn this one continues
    instructions: str | None = None  # system text for this turn only, never carried over
    created_at: float = 0.0
    completed_at: float | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    response: dict[str, Any] | None = None  # the provider's wire object as returned, for retrieval
    conversation_id: str | None = None  # assigned by the store
    compaction: Compaction | None = None  # the earlier messages the model did not see (--context-overflow)

    @property
    def items(self) -> int:
        return len(self.input) + len(self.output)

    @classmethod
    def from_exchange(
        cls,
        id: str,
        source: str,
        model: str,
        messages: list[Message],
        completion: Completion,
        *,
        previous_id: str | None = None,
        created_at: float | None = None,
    ) -> "Turn":
        """A turn from neutral messages and the finished answer (what stateless APIs and the REPL record).

        ``messages`` is what this turn adds to the conversation: the whole request
        for a stateless API (Chat Completions, Anthropic), only the new messages
        for a turn that continues ``previous_id`` (the REPL).
        """
        finish = completion.finish
        return cls(
            id=id,
            source=source,
            model=model,
            input=[stored(m) for m in messages],
            output=[answer_message(completion)],
            usage=finish.usage if finish else Usage(),
            status="incomplete" if finish is not None and finish.reason == "length" else "completed",
            previous_id=previous_id,
            created_at=time.time() if created_at is None else created_at,
            completed_at=time.time(),
            compaction=finish.compaction if finish else None,
        )


def stored(message: Message) -> StoredMessage:
    """``message`` as a StoredMessage (keeping its id if it has one)."""
    if isinstance(message, StoredMessage):
        return message
    return StoredMessage(**{f.name: getattr(message, f.name) for f in fields(Message)})


def answer_message(completion: Completion, id: str | None = None) -> StoredMessage:
    """The assistant's answer as one message: text, reasoning and tool calls together."""
    return StoredMessage(
        id=id or new_id("msg_"),
        role="assistant",
        content=completion.text or None,
        reasoning=completion.reasoning or None,
        tool_calls=list(completion.tool_calls),
    )


@dataclass
class Conversation:
    id: str
    created_at: float
    updated_at: float
    turns: list[Turn]
    archived: bool = False  # read from conversation_logs/ rather than the hot store

    def turn(self, turn_id: str) -> Turn | None:
        return next((t for t in self.turns if t.id == turn_id), None)

    def chain(self, turn_id: str) -> list[Turn]:
        """The turns leading to ``turn_id`` (oldest first), following ``previous_id``."""
        by_id = {t.id: t for t in self.turns}
        chain: list[Turn] = []
        current = by_id.get(turn_id)
        while current is not None and len(chain) < len(by_id):
            chain.append(current)
            current = by_id.get(current.previous_id) if current.previous_id else None
        return chain[::-1]


@dataclass
class ConversationSummary:
    id: str
    created_at: float
    updated_at: float
    turns: int
    items: int
    archived: bool
    title: str  # the start of the first user message
    models: list[str]
    sources: list[str]


def summarize(conversation: Conversation) -> ConversationSummary:
    turns = conversation.turns
    return ConversationSummary(
        id=conversation.id,
        created_at=conversation.created_at,
        updated_at=conversation.updated_at,
        turns=len(turns),
        items=sum(t.items for t in turns),
        archived=conversation.archived,
        title=title_of(turns),
        models=sorted({t.model for t in turns}),
        sources=sorted({t.source for t in turns}),
    )


def title_of(turns: list[Turn], width: int = 60) -> str:
    for turn in turns:
        for message in turn.input:
            if message.role == "user" and message.content:
                text = " ".join(message.content.split())
                return text if len(text) <= width else text[: width - 1] + "…"
    return ""


# ---- JSON ------------------------------------------------------------------


def message_json(m: StoredMessage) -> dict[str, Any]:
    return {
        "id": m.id,
        "role": m.role,
        "content": m.content,
        "reasoning": m.reasoning,
        "tool_calls": [{"id": c.id, "name": c.name, "arguments": c.arguments, **({"custom": True} if c.custom else {})} for c in m.tool_calls],
        "tool_call_id": m.tool_call_id,
        "name": m.name,
        **({"images": [image_json(i) for i in m.images]} if m.images else {}),
    }


def message_from_json(d: dict[str, Any]) -> StoredMessage:
    return StoredMessage(
        id=d["id"],
        role=d["role"],
        content=d.get("content"),
        reasoning=d.get("reasoning"),
        tool_calls=[
            ToolCall(id=c["id"], name=c["name"], arguments=c["arguments"], custom=bool(c.get("custom"))) for c in d.get("tool_calls") or []
        ],
        tool_call_id=d.get("tool_call_id"),
        name=d.get("name"),
        images=[image_from_json(i) for i in d.get("images") or []],
    )


def image_json(i: ImageInput) -> dict[str, Any]:
    """An image as PNG (lossless: read back, it has the same pixels and digest), inline in its turn, so it
    counts in the store's byte bound and is archived with its conversation."""
    out = io.BytesIO()
    i.image.save(out, format="PNG")
    return {"digest": i.digest, "width": i.width, "height": i.height, "png": base64.b64encode(out.getvalue()).decode()}


def image_from_json(d: dict[str, Any]) -> ImageInput:
    from PIL import Image  # only a store holding images needs it, and images come from the vision extra

    return ImageInput(image=Image.open(io.BytesIO(base64.b64decode(d["png"]))), digest=d["digest"], width=d["width"], height=d["height"])


def usage_json(u: Usage) -> dict[str, int]:
    return {
        "input_tokens": u.prompt_tokens,
        "output_tokens": u.completion_tokens,
        "cached_tokens": u.cached_tokens,
        "reasoning_tokens": u.reasoning_tokens,
    }


def usage_from_json(d: dict[str, Any]) -> Usage:
    return Usage(
        prompt_tokens=d.get("input_tokens", 0),
        completion_tokens=d.get("output_tokens", 0),
        cached_tokens=d.get("cached_tokens", 0),
        reasoning_tokens=d.get("reasoning_tokens", 0),
    )


def turn_json(t: Turn) -> dict[str, Any]:
    return {
        "id": t.id,
        "conversation_id": t.conversation_id,
        "previous_id": t.previous_id,
        "source": t.source,
        "model": t.model,
        "status": t.status,
        "created_at": t.created_at,
        "completed_at": t.completed_at,
        "instructions": t.instructions,
        "input": [message_json(m) for m in t.input],
        "output": [message_json(m) for m in t.output],
        "usage": usage_json(t.usage),
        "metadata": t.metadata,
        "response": t.response,
        **({"compaction": asdict(t.compaction)} if t.compaction else {}),
    }


def turn_from_json(d: dict[str, Any]) -> Turn:
    return Turn(
        id=d["id"],
        conversation_id=d.get("conversation_id"),
        previous_id=d.get("previous_id"),
        source=d["source"],
        model=d["model"],
        status=d.get("status", "completed"),
        created_at=d.get("created_at", 0.0),
        completed_at=d.get("completed_at"),
        instructions=d.get("instructions"),
        input=[message_from_json(m) for m in d.get("input", [])],
        output=[message_from_json(m) for m in d.get("output", [])],
        usage=usage_from_json(d.get("usage") or {}),
        metadata=d.get("metadata") or {},
        response=d.get("response"),
        compaction=Compaction(**d["compaction"]) if d.get("compaction") else None,
    )


def conversation_json(c: Conversation) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "id": c.id,
        "created_at": c.created_at,
        "updated_at": c.updated_at,
        "turns": [turn_json(t) for t in c.turns],
    }


def conversation_from_json(d: dict[str, Any]) -> Conversation:
    if d.get("format") != FORMAT:
        raise ValueError(f"not an mlxcli conversation (format {d.get('format')!r})")
    if d.get("version") != FORMAT_VERSION:
        raise ValueError(f"unsupported conversation format version {d.get('version')!r}")
    return Conversation(
        id=d["id"],
        created_at=d["created_at"],
        updated_at=d["updated_at"],
        turns=[turn_from_json(t) for t in d["turns"]],
    )

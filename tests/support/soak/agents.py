"""Growing agent conversations, one per chat API: each turn a user message, the tool call it causes, its result,
and the answer, every one checked against the nonces the turn sent (the echo script's call carries the user's
nonce, its answer the tool result's). A conversation grows for some turns, then starts again.

OpenAI Chat Completions sends the whole history; Responses chains turns by ``previous_response_id`` (stored:
each response the client saw complete is kept for the crash leg to retrieve); Anthropic marks its system prompt
and last message with ``cache_control``, as Claude Code does. Half the requests go through the official SDK, the
other half are raw streams, timed and checked event by event.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from tests.support.soak.calls import anthropic_answer, check_stream, expect, responses_answer, sdk, stream

if TYPE_CHECKING:
    from tests.support.soak.mix import Session

MODEL = "scripted"
SYSTEM = "You are the soak test's agent. Look keys up with the lookup tool, then say what it found."
PARAMETERS = {"type": "object", "properties": {"key": {"type": "string"}}, "required": ["key"]}
CHAT_TOOL = {"type": "function", "function": {"name": "lookup", "description": "Look a key up.", "parameters": PARAMETERS}}
RESPONSES_TOOL = {"type": "function", "name": "lookup", "description": "Look a key up.", "parameters": PARAMETERS}
ANTHROPIC_TOOL = {"name": "lookup", "description": "Look a key up.", "input_schema": PARAMETERS}
CACHED = {"type": "ephemeral"}


class Conversation:
    api = ""

    def __init__(self, session: "Session"):
        self.s = session
        self.turns_left = 0

    def turn(self) -> None:
        if self.turns_left <= 0:
            self.reset()
            self.turns_left = self.s.rng.randint(4, 16)
        self.turns_left -= 1
        key, value = self.s.nonce(), self.s.nonce()
        try:
            first = self.s.attempt("agent", self.api, lambda: self.ask_key(key))
            expect(f"{self.api} tool call", first["calls"], [("lookup", {"key": key})])
            second = self.s.attempt("agent", self.api, lambda: self.give_value(first, value))
            expect(f"{self.api} answer", (second["text"], second["calls"]), (value, []))
        except Exception:
            self.turns_left = 0  # its history is no longer what the server saw: start again
            raise
        self.s.rec.checked(answer=True)
        self.answered(second)

    def _streamed(self) -> bool:
        return self.s.rng.random() < 0.5

    def _stream(self, body: dict[str, Any]) -> dict[str, Any]:
        result = stream(self.s.http, self.api, body)
        answer = check_stream(self.api, result.raw)
        self.s.rec.checked(stream=True)
        self.s.rec.request("agent", 200, ttft=result.ttft, itls=result.itls)
        return answer

    def reset(self) -> None: ...

    def ask_key(self, key: str) -> dict[str, Any]: ...

    def give_value(self, first: dict[str, Any], value: str) -> dict[str, Any]: ...

    def answered(self, answer: dict[str, Any]) -> None: ...


class ChatConversation(Conversation):
    api = "chat"

    def reset(self) -> None:
        self.messages: list[dict[str, Any]] = [{"role": "system", "content": SYSTEM}]

    def _ask(self) -> dict[str, Any]:
        body = {"model": MODEL, "messages": self.messages, "tools": [CHAT_TOOL]}
        if self._streamed():
            return self._stream(body)
        with sdk(self.api):
            message = self.s.openai.chat.completions.create(**body).choices[0].message
        self.s.rec.request("agent", 200)
        calls = message.tool_calls or []
        return {"text": message.content or "", "calls": [(c.function.name, json.loads(c.function.arguments)) for c in calls],
                "call_ids": [c.id for c in calls]}

    def ask_key(self, key: str) -> dict[str, Any]:
        if self.messages[-1]["role"] == "user":
            self.messages.pop()  # a retry of the same turn
        self.messages.append({"role": "user", "content": f"Look up {key} for me."})
        return self._ask()

    def give_value(self, first: dict[str, Any], value: str) -> dict[str, Any]:
        if self.messages[-1]["role"] != "tool":
            (call_id,) = first["call_ids"]
            (name, arguments), = first["calls"]
            call = {"id": call_id, "type": "function", "function": {"name": name, "arguments": json.dumps(arguments)}}
            self.messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
            self.messages.append({"role": "tool", "tool_call_id": call_id, "content": f"The value is {value}."})
        return self._ask()

    def answered(self, answer: dict[str, Any]) -> None:
        self.messages.append({"role": "assistant", "content": answer["text"]})


class ResponsesConversation(Conversation):
    api = "responses"

    def reset(self) -> None:
        self.previous: str | None = None

    def _ask(self, body: dict[str, Any]) -> dict[str, Any]:
        body = {"model": MODEL, "instructions": SYSTEM, "tools": [RESPONSES_TOOL], **body}
        if self.previous is not None and "previous_response_id" not in body:
            body["previous_response_id"] = self.previous
        if self._streamed():
            answer = self._stream(body)
            response = answer.pop("response")
        else:
            with sdk(self.api):
                response = self.s.openai.responses.create(**body).model_dump(mode="json")
            self.s.rec.request("agent", 200)
            answer = responses_answer(response)
        expect("responses status", response["status"], "completed")
        answer["id"] = response["id"]
        self.s.rec.response_completed(response["id"], {"text": answer["text"], "calls": answer["calls"]})
        return answer

    def ask_key(self, key: str) -> dict[str, Any]:
        return self._ask({"input": [{"role": "user", "content": f"Look up {key} for me."}]})

    def give_value(self, first: dict[str, Any], value: str) -> dict[str, Any]:
        (call_id,) = first["call_ids"]
        output = {"type": "function_call_output", "call_id": call_id, "output": f"The value is {value}."}
        return self._ask({"previous_response_id": first["id"], "input": [output]})

    def answered(self, answer: dict[str, Any]) -> None:
        self.previous = answer["id"]


class AnthropicConversation(Conversation):
    api = "anthropic"

    def reset(self) -> None:
        self.messages: list[dict[str, Any]] = []

    def _ask(self) -> dict[str, Any]:
        system = [{"type": "text", "text": SYSTEM, "cache_control": CACHED}]
        body = {"model": MODEL, "max_tokens": 256, "system": system, "messages": self.messages, "tools": [ANTHROPIC_TOOL]}
        if self._streamed():
            return self._stream(body)
        with sdk(self.api):
            message = self.s.anthropic.messages.create(**body)
        self.s.rec.request("agent", 200)
        return anthropic_answer([b.model_dump(mode="json", exclude_none=True) for b in message.content])

    def _say(self, content: list[dict[str, Any]]) -> None:
        """A user message carrying the cache breakpoint, moved there from the previous one (as Claude Code does)."""
        for message in self.messages:
            for block in message["content"] if isinstance(message["content"], list) else ():
                block.pop("cache_control", None)
        content[-1]["cache_control"] = CACHED
        self.messages.append({"role": "user", "content": content})

    def ask_key(self, key: str) -> dict[str, Any]:
        if self.messages and self.messages[-1]["role"] == "user":
            self.messages.pop()  # a retry of the same turn
        self._say([{"type": "text", "text": f"Look up {key} for me."}])
        return self._ask()

    def give_value(self, first: dict[str, Any], value: str) -> dict[str, Any]:
        if self.messages[-1]["content"][0]["type"] != "tool_result":
            (call_id,) = first["call_ids"]
            (name, arguments), = first["calls"]
            self.messages.append({"role": "assistant", "content": [{"type": "tool_use", "id": call_id, "name": name, "input": arguments}]})
            self._say([{"type": "tool_result", "tool_use_id": call_id, "content": f"The value is {value}."}])
        return self._ask()

    def answered(self, answer: dict[str, Any]) -> None:
        self.messages.append({"role": "assistant", "content": [{"type": "text", "text": answer["text"]}]})


CONVERSATIONS = (ChatConversation, ResponsesConversation, AnthropicConversation)

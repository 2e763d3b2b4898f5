"""What to do with a conversation that outgrows its model's context window (``--context-overflow``).

``error`` (the default): the API's context-length error, as soon as the prompt leaves no room to answer.
``truncate``: drop the oldest messages after the system messages until the prompt leaves room for the
answer (``max_tokens``, at most a quarter of the window). ``summarize``: the same model summarises the
messages before the last ``--context-keep-turns`` into one note appended to the system message, and the
prompt is retried; the context-length error comes only if it still does not fit.

What is dropped comes in units that keep the conversation well formed: a user message, or an assistant
message with the tool results that answer its calls. When the kept messages would begin with the
assistant, the user message they answer is kept too (the task of an agent's long tool loop).

Both policies remember what they did for a conversation prefix: the next request of the same
conversation keeps the same cut (and summary) while it fits, so its prompt begins as the last one did
and the prompt cache serves it; a cut, once moved, leaves a quarter of the room free. ``fit`` runs on
the caller's thread, before the request is queued; a summary is a request of its own, submitted and
read like any other (bounded: ``SUMMARY_TOKENS``, greedy, reasoning off; one at a time).
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Callable

from mlxcli.core.collect import collect
from mlxcli.core.errors import ContextLengthExceeded
from mlxcli.core.events import Compaction
from mlxcli.core.request import ChatRequest, Message, Sampling

if TYPE_CHECKING:
    from mlxcli.core.engine import Generation
    from mlxcli.engine.prompt import RenderedPrompt
    from mlxcli.engine.served import ServedModel

log = logging.getLogger("mlxcli.engine")

SUMMARY_TOKENS = 512
REMEMBERED = 256  # conversation prefixes whose cut (and summary) are kept
SLACK = 0.75  # a new cut leaves the prompt this share of its room at most
NOTE = "Summary of the earlier conversation (its older messages were removed to fit the context window):\n"
ASK_SUMMARY = (
    "Summarize the conversation so far for your own later reference: the user's goals, facts and decisions, "
    "what was done (tool calls and their results) and what is still open. Be concise; write only the summary."
)


@dataclass
class _Decision:
    cut: int  # messages dropped after the system messages
    summary: str | None


class ContextPolicy:
    def __init__(
        self,
        render: Callable[["ServedModel", ChatRequest], "RenderedPrompt"],
        submit: Callable[[ChatRequest], "Generation"],
        policy: str = "error",
        keep_turns: int = 6,
    ):
        self._render = render
        self._submit = submit
        self.policy = policy
        self.keep_turns = keep_turns
        self._remembered: OrderedDict[str, _Decision] = OrderedDict()  # conversation prefix → what was done
        self._lock = threading.Lock()  # guards _remembered (callers' threads)
        self._summarizing = threading.Lock()  # one summary at a time

    def fit(
        self, model: "ServedModel", request: ChatRequest, rendered: "RenderedPrompt", max_tokens: int, window: int
    ) -> tuple["RenderedPrompt", Compaction | None]:
        """The prompt to run in ``window`` tokens: ``rendered`` if it fits, else one of fewer messages
        (``request.messages`` is rewritten to them: what the model sees is what gets stored). Raises
        ContextLengthExceeded."""
        spec = model.spec
        policy = request.context_overflow or (spec.context_overflow if spec else None) or self.policy
        if policy == "error":
            if len(rendered.tokens) >= window:
                raise ContextLengthExceeded(len(rendered.tokens), window)
            return rendered, None
        room = window - min(max_tokens, window // 4)  # what the prompt may use
        if len(rendered.tokens) <= room:
            return rendered, None
        system, body = _split(request.messages)
        cuts = _cuts(body)
        keys = _prefix_keys(model.name, system, body, cuts)
        earlier = self._latest(cuts, keys)  # what was done for this conversation before, if it still fits
        if earlier is not None and (attempt := self._try(model, request, system, body, earlier, room)) is not None:
            return attempt
        if policy == "truncate":
            decision = self._truncation(model, request, system, body, cuts, int(room * SLACK)) or self._truncation(model, request, system, body, cuts, room)
        else:
            keep = (spec.context_keep_turns if spec else None) or self.keep_turns
            decision = self._summary(model, request, system, body, cuts, keys, keep, earlier)
        attempt = self._try(model, request, system, body, decision, room) if decision is not None else None
        if attempt is None:
            raise ContextLengthExceeded(len(rendered.tokens), window)
        self._remember(keys[decision.cut], decision)
        log.info(
            "%s: %s (%d tokens) outgrew the room its window of %d leaves: %s %d of its messages",
            model.name, request.request_id, len(rendered.tokens), window,
            "summarized" if policy == "summarize" else "dropped", attempt[1].dropped,
        )
        return attempt

    def _latest(self, cuts: list[int], keys: dict[int, str]) -> _Decision | None:
        """The decision remembered for the longest prefix of this conversation."""
        with self._lock:
            for cut in reversed(cuts):
                decision = self._remembered.get(keys[cut])
                if decision is not None and decision.cut == cut:
                    self._remembered.move_to_end(keys[cut])
                    return decision
        return None

    def _remember(self, key: str, decision: _Decision) -> None:
        with self._lock:
            self._remembered[key] = decision
            self._remembered.move_to_end(key)
            while len(self._remembered) > REMEMBERED:
                self._remembered.popitem(last=False)

    def _try(self, model, request, system, body, decision, room) -> tuple["RenderedPrompt", Compaction] | None:
        messages, dropped = _compacted(system, body, decision)
        candidate = replace(request, messages=messages)
        rendered = self._render(model, candidate)
        if len(rendered.tokens) > room:
            return None
        request.messages = messages
        policy = "summarize" if decision.summary is not None else "truncate"
        return rendered, Compaction(policy, dropped, decision.summary)

    def _truncation(self, model, request, system, body, cuts, room) -> _Decision | None:
        """The smallest cut whose prompt fits ``room`` (bisected over the unit boundaries; the last unit,
        the request's own message, always stays)."""

        def too_long(cut: int) -> bool:
            messages, _ = _compacted(system, body, _Decision(cut, None))
            return len(self._render(model, replace(request, messages=messages)).tokens) > room

        candidates = cuts[1:]
        last = _last_true(candidates, too_long)
        i = 0 if last is None else candidates.index(last) + 1
        return _Decision(candidates[i], None) if i < len(candidates) else None

    def _summary(self, model, request, system, body, cuts, keys, keep: int, earlier: _Decision | None) -> _Decision | None:
        """A summary of the units before the last ``keep``; None when there are no more than that. It
        continues ``earlier``'s summary, if any, and reads what it summarizes in as few requests as fit the
        window, each summarizing the last one's summary and the messages after it (each remembered)."""
        if len(cuts) <= keep:
            return None
        target = cuts[len(cuts) - keep]
        with self._summarizing:  # a second request of the same conversation waits, then finds it remembered
            with self._lock:
                known = self._remembered.get(keys[target])
            if known is not None and known.summary is not None:
                return known
            decision = earlier if earlier is not None and earlier.summary is not None and earlier.cut < target else None
            room = model.context_window - min(SUMMARY_TOKENS, model.context_window // 4)
            while decision is None or decision.cut < target:
                ends = [c for c in cuts if (decision.cut if decision else 0) < c <= target]
                fits = lambda end: len(self._render(model, self._ask(model, request, system, body, decision, end)).tokens) <= room
                end = _last_true(ends, fits) or ends[0]  # a unit too long on its own: the ask's truncation reads its end
                ask = self._ask(model, request, system, body, decision, end)
                summary = collect(self._submit(ask)).text.strip()
                if not summary:  # it answered with a tool call: ask again without tools (the prompt cache then serves less)
                    summary = collect(self._submit(replace(ask, tool_choice="none"))).text.strip()
                decision = _Decision(end, summary)
                self._remember(keys[end], decision)
            return decision

    @staticmethod
    def _ask(model, request: ChatRequest, system, body, previous: _Decision | None, end: int) -> ChatRequest:
        """The request for a summary of ``body`` up to ``end``, after ``previous``'s summary."""
        start = previous.cut if previous is not None else 0
        history = _with_note(system, previous.summary if previous else None) + body[start:end]
        return replace(
            request,
            messages=history + [Message("user", ASK_SUMMARY)],
            model=model.name,
            sampling=Sampling(temperature=0.0, max_tokens=min(SUMMARY_TOKENS, model.context_window // 4)),
            tool_choice="auto",
            response_format=None,  # the answer's format is not the summary's
            reasoning="off",
            context_overflow="truncate",
            request_id=request.request_id + "-summary",
        )


def _last_true(items: list[int], test: Callable[[int], bool]) -> int | None:
    """The last item for which ``test`` holds, bisected (it holds for a prefix of ``items``)."""
    lo, hi, found = 0, len(items) - 1, None
    while lo <= hi:
        mid = (lo + hi) // 2
        if test(items[mid]):
            found, lo = items[mid], mid + 1
        else:
            hi = mid - 1
    return found


def _split(messages: list[Message]) -> tuple[list[Message], list[Message]]:
    """(the leading system messages, the rest)."""
    n = next((i for i, m in enumerate(messages) if m.role != "system"), len(messages))
    return messages[:n], messages[n:]


def _cuts(body: list[Message]) -> list[int]:
    """Where the units of ``body`` begin: at each user or assistant message (a tool result belongs to the
    call before it; a system message in the middle to the message before it)."""
    return [i for i, m in enumerate(body) if m.role in ("user", "assistant")] or [0]


def _compacted(system: list[Message], body: list[Message], decision: _Decision) -> tuple[list[Message], int]:
    """The messages the model sees after ``decision``, and how many of ``body`` it does not see."""
    kept = body[decision.cut :]
    dropped = decision.cut
    if kept and kept[0].role != "user":
        task = next((m for m in reversed(body[: decision.cut]) if m.role == "user"), None)
        if task is not None:
            kept, dropped = [task] + kept, dropped - 1
    return _with_note(system, decision.summary) + kept, dropped


def _with_note(system: list[Message], summary: str | None) -> list[Message]:
    """The system messages with the summary appended to the first (templates accept one system message)."""
    if summary is None:
        return list(system)
    if not system:
        return [Message("system", NOTE + summary)]
    first = system[0]
    content = f"{first.content}\n\n{NOTE}{summary}" if first.content else NOTE + summary
    return [replace(first, content=content)] + system[1:]


def _prefix_keys(model: str, system: list[Message], body: list[Message], cuts: list[int]) -> dict[int, str]:
    """For each cut, a hash of the conversation before it (the system messages and ``body[:cut]``)."""
    digest = hashlib.sha256(model.encode())
    for m in system:
        digest.update(_message_bytes(m))
    keys, done = {}, 0
    for cut in cuts:
        for m in body[done:cut]:
            digest.update(_message_bytes(m))
        done = cut
        keys[cut] = digest.copy().hexdigest()
    return keys


def _message_bytes(m: Message) -> bytes:
    calls = [(c.id, c.name, c.arguments) for c in m.tool_calls]
    return json.dumps([m.role, m.content, calls, m.tool_call_id, m.name]).encode() + b"\n"

"""Generated text → neutral events: stop sequences first, then routing of the text.

Stop strings are matched on decoded text, not token ids: the same string can be
tokenized differently inside a sentence than on its own.

Routing is a state machine on decoded text (mlx-lm's ``TextStateMachine``), so a
marker is found whether it is one token or split across several, and text that
may be the start of a marker is held back until it is known not to be. Its table
comes from the model's ``OutputFormat`` (formats.py), e.g.:

    normal ──think start──► reasoning ──think end──► normal
    normal ──call start───► tool      ──call end───► normal   (one call block parsed)

Text in ``normal`` is the answer, in ``reasoning`` the reasoning, in ``tool`` a call;
any other state is markup (a response format's headers) and is dropped. Markers
never reach the events, nor does the whitespace that touches them (the newlines
around ``</think>`` or between two calls). A call block that does not parse (cut
off by ``max_tokens``, or malformed) is dropped with a warning rather than shown
as text, and a call identical to one the answer already made is dropped too.

A format with message headers (Harmony, formats.Headers) has the machine collect
each header's text; the format's ``route`` then says which of those states the
message's body is read as (a call's body starts with its header: the parser reads
the function's name there). Its messages are paragraphs: two of one kind are
joined by a blank line.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any, Literal

from mlx_lm.generate import TextStateMachine

from mlxcli.core.events import Event, FinishReason, ReasoningDelta, TextDelta, ToolCallDelta
from mlxcli.core.request import new_id
from mlxcli.engine.formats import NORMAL, REASONING, TOOL, OutputFormat, ToolFormat

log = logging.getLogger("mlxcli.engine")

ReasoningMode = Literal["separate", "strip"]


@dataclass(frozen=True)
class OutputPlan:
    """How to read one request's output; ``prompt.render`` makes it with the prompt."""

    format: OutputFormat = field(default_factory=OutputFormat)
    tools: ToolFormat | None = None  # None: tool calls are not parsed (no tools, or tool_choice none)
    tool_specs: list[dict[str, Any]] = field(default_factory=list)  # the request's tools, for typed parsers
    initial: str = NORMAL  # REASONING when the prompt opened the think block, TOOL when it began a call
    # What the prompt already wrote of the initial state: a call after its start marker, or a header.
    prefill: str = ""
    max_calls: int | None = None  # 1 for parallel_tool_calls: false
    custom_tools: frozenset[str] = frozenset()  # tools whose input is raw text after a {"name": …} line


class StopMatcher:
    """Finds the first stop string in a stream of text, holding back possible prefixes."""

    def __init__(self, stop: list[str]):
        self.stop = [s for s in stop if s]
        self.pending = ""

    def feed(self, text: str) -> tuple[str, str | None]:
        """Returns (text safe to emit, the stop string matched or None)."""
        buf = self.pending + text
        if not self.stop:
            self.pending = ""
            return buf, None
        hits = [(buf.find(s), s) for s in self.stop]
        hits = [(i, s) for i, s in hits if i >= 0]
        if hits:
            index, matched = min(hits)
            self.pending = ""
            return buf[:index], matched
        hold = self._held_suffix(buf)
        self.pending = buf[len(buf) - hold :]
        return buf[: len(buf) - hold], None

    def flush(self) -> str:
        text, self.pending = self.pending, ""
        return text

    def _held_suffix(self, buf: str) -> int:
        """Length of the longest suffix of ``buf`` that begins some stop string."""
        longest = min(len(buf), max(len(s) for s in self.stop) - 1)
        for n in range(longest, 0, -1):
            tail = buf[-n:]
            if any(s.startswith(tail) for s in self.stop):
                return n
        return 0


class _Run:
    """One kind of text (the answer, or the reasoning) between markers.

    Whitespace touching a marker belongs to the markup: leading whitespace after a
    marker is dropped, and trailing whitespace is held (``hold``) until text follows
    it, or dropped if a marker does.
    """

    def __init__(self, *, hold: bool, lead: bool = False, separator: str = ""):
        self.hold = hold
        self.lead = lead  # drop leading whitespace: a marker came just before
        self.held = ""
        self.separator = separator  # written before a run that follows an earlier one
        self.written = False

    def enter(self) -> None:
        self.lead, self.held = True, ""

    def leave(self) -> None:
        self.held = ""

    def add(self, text: str) -> str:
        if self.lead:
            text = text.lstrip()
            if not text:
                return ""
            self.lead = False
            if self.written:
                text = self.separator + text
        self.written = True
        if not self.hold:
            return text
        body = text.rstrip()
        if not body:
            self.held += text
            return ""
        out, self.held = self.held + body, text[len(body) :]
        return out

    def flush(self) -> str:
        out, self.held = self.held, ""
        return out


class _Router:
    """Routes text (after stop strings) to answer, reasoning and tool-call events."""

    def __init__(self, plan: OutputPlan, reasoning: ReasoningMode):
        transitions = plan.format.transitions(plan.tools)
        self._machine = TextStateMachine(transitions).make_state(plan.initial)
        self.plan = plan
        self.headers = plan.format.headers
        self.keep_reasoning = reasoning == "separate"
        separator = "\n\n" if self.headers is not None else ""
        # Trailing whitespace is only held where a marker may follow it: plain answers pass through as generated.
        self.answer = _Run(hold=bool(transitions.get(NORMAL)) or self.headers is not None, separator=separator)
        self.reasoning = _Run(hold=True, lead=True, separator=separator)
        self.call_text = plan.prefill if plan.initial == TOOL else ""
        self.header = plan.prefill if self.headers is not None and plan.initial == self.headers.state else ""
        self.body = ""  # the state the current message's body is read as (a format with headers)
        self.calls: list[tuple[str, str]] = []  # (name, arguments) of the calls emitted

    @property
    def state(self) -> str:
        return self._read_as(self._machine[0])

    def _read_as(self, state: str) -> str:
        """The state a machine state's text is read as: a body as its header said."""
        return self.body if self.headers is not None and state == self.headers.body else state

    def feed(self, text: str) -> list[Event]:
        if not text:
            return []
        self._machine, segments = TextStateMachine.split(self._machine, text)
        events: list[Event] = []
        for n, (state, piece) in enumerate(segments):
            events += self._add(self._read_as(state), piece)
            if n + 1 < len(segments):  # a marker ends this segment
                if self.headers is not None and state == segments[n + 1][0] == self.headers.body:
                    continue  # a stray marker inside a message: dropped, the message goes on
                events += self._leave(self._read_as(state))
                self._enter(state, segments[n + 1][0])
        return events

    def finish(self) -> list[Event]:
        """The end of generation: text held as a possible marker is text after all."""
        self._machine, rest, state = TextStateMachine.flush(self._machine)
        state = self._read_as(state)
        events = self._add(state, rest)
        if state == TOOL:  # a call without its end marker: whole if the format has none, else cut off
            events += self._parse_call()
        if state == NORMAL and (tail := self.answer.flush()):
            events.append(TextDelta(tail))
        return events

    def _add(self, state: str, text: str) -> list[Event]:
        if self.headers is not None and state == self.headers.state:
            self.header += text
            return []
        if state == TOOL:
            self.call_text += text
            return []
        if state == REASONING:
            text = self.reasoning.add(text)
            return [ReasoningDelta(text)] if text and self.keep_reasoning else []
        if state == NORMAL:
            text = self.answer.add(text)
            return [TextDelta(text)] if text else []
        return []  # markup

    def _leave(self, state: str) -> list[Event]:
        if state == TOOL:
            return self._parse_call()
        if state == REASONING:
            self.reasoning.leave()
        elif state == NORMAL:
            self.answer.leave()
        return []

    def _enter(self, left: str, state: str) -> None:
        """``state`` begins after a marker that ended ``left`` (machine states)."""
        start = ""
        if self.headers is not None:
            if state == self.headers.state:
                self.header = ""
            elif left == self.headers.state:  # a header ended: it says what the body is
                kind, start = self.headers.route(self.header)
                self.body = self.headers.body_state(kind)
            state = self._read_as(state)
        if state == REASONING:
            self.reasoning.enter()
        elif state == NORMAL:
            self.answer.enter()
        elif state == TOOL:
            self.call_text = start

    def _parse_call(self) -> list[Event]:
        text, self.call_text = self.call_text, ""
        tools = self.plan.tools
        if tools is None:  # a response format's call state, in a request without tools
            return []
        custom = self._custom_call(text)
        if custom is not None:
            return self._emit(*custom, None, custom=True)
        try:
            parsed = tools.parse(text, self.plan.tool_specs)
        except Exception as exc:  # mlx-lm's parsers raise ValueError, JSONDecodeError, AttributeError...
            log.warning("dropped a tool call that does not parse as %s (%s: %s): %r", tools.parser, type(exc).__name__, exc, text[:500])
            return []
        events: list[Event] = []
        for call in parsed if isinstance(parsed, list) else [parsed]:
            name, arguments, call_id = _call_parts(call)
            if name is None:
                log.warning("dropped a tool call without a name or with arguments that are not an object: %r", call)
                continue
            events += self._emit(name, json.dumps(arguments, ensure_ascii=False), call_id)
        return events

    def _emit(self, name: str, arguments: str, call_id: str | None, *, custom: bool = False) -> list[Event]:
        if self.plan.max_calls is not None and len(self.calls) >= self.plan.max_calls:
            log.info("dropped tool call %r: parallel_tool_calls is false", name)
            return []
        key = (name, _canonical(arguments) if not custom else arguments)
        if key in self.calls:  # a model repeating itself: the client would run the same call twice
            log.info("dropped tool call %r: the same call, with the same arguments, was made already", name)
            return []
        index = len(self.calls)
        self.calls.append(key)
        # Name and id once with empty arguments, then the arguments (wire-formats §1.4).
        return [ToolCallDelta(index, call_id or new_id("call_"), name, "", custom=custom), ToolCallDelta(index, arguments=arguments)]

    def _custom_call(self, text: str) -> tuple[str, str] | None:
        """(name, input) of a custom tool's call: a ``{"name": …}`` line, then the raw input."""
        if not self.plan.custom_tools:
            return None
        head, _, rest = text.lstrip().partition("\n")
        try:
            header = json.loads(head)
        except ValueError:
            return None
        if not isinstance(header, dict) or list(header) != ["name"] or header["name"] not in self.plan.custom_tools:
            return None
        return header["name"], rest.removesuffix("\n")


def _canonical(arguments: str) -> str:
    """Arguments compared as JSON values, whatever their key order."""
    return json.dumps(json.loads(arguments), sort_keys=True)


def _call_parts(call: Any) -> tuple[str | None, dict[str, Any], str | None]:
    """(name, arguments object, the model's own call id) of a parsed call; name None if unusable."""
    if not isinstance(call, dict) or not isinstance(call.get("name"), str) or not call["name"].strip():
        return None, {}, None
    arguments = call.get("arguments", call.get("parameters"))
    if arguments is None:
        arguments = {}
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments) if arguments.strip() else {}
        except ValueError:
            return None, {}, None
    if not isinstance(arguments, dict):
        return None, {}, None
    call_id = call.get("id") if isinstance(call.get("id"), str) else None
    return call["name"].strip(), arguments, call_id


class OutputProcessor:
    """Turns the text of one generation into events. Feed it each token's text."""

    def __init__(self, stop: list[str], plan: OutputPlan | None = None, *, reasoning: ReasoningMode = "separate"):
        self.stop_matcher = StopMatcher(stop)
        self.router = _Router(plan or OutputPlan(), reasoning)
        self.reasoning_tokens = 0

    def feed(self, text: str) -> tuple[list[Event], str | None]:
        before = self.router.state
        visible, stop_hit = self.stop_matcher.feed(text)
        events = self.router.feed(visible)
        if REASONING in (before, self.router.state):
            self.reasoning_tokens += 1
        return events, stop_hit

    def finish(self) -> list[Event]:
        """Flush held-back text at the end of generation (after a stop string too: it has none)."""
        return self.router.feed(self.stop_matcher.flush()) + self.router.finish()

    def finish_reason(self, reason: FinishReason) -> FinishReason:
        """``tool_calls`` for an answer that ended normally after calling tools."""
        return "tool_calls" if reason == "stop" and self.router.calls else reason

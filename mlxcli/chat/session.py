"""A chat conversation: its history and system prompt, asking, retrying, and storing every exchange.

Each exchange is recorded in the conversation store as a Turn (source ``chat``)
that continues the previous one, so `mlxcli convo export` shows the session (a
turn that could not be stored is reported, and the chat goes on).

Stopping an answer (Ctrl-C, i.e. KeyboardInterrupt while it streams) keeps the
question and whatever part of the answer had arrived, in the conversation and in
the store (status ``incomplete``); ``retry`` asks again. An answer that fails
(the backend raises) leaves the conversation as it was.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Iterator

from mlxcli.chat.backends import Backend
from mlxcli.core.collect import Collector, Completion
from mlxcli.core.errors import MlxcliError
from mlxcli.core.events import Event, Finish, ReasoningDelta, TextDelta, Usage
from mlxcli.core.request import ChatRequest, Grammar, ImageInput, Message, Sampling, new_id
from mlxcli.store import ConversationStore, StoreFailure, Turn
from mlxcli.store.records import Conversation

SOURCE = "chat"
TURN_PREFIX = "chat_"


@contextlib.contextmanager
def ctrl_c() -> Iterator[threading.Event]:
    """While an answer streams: Ctrl-C raises KeyboardInterrupt at once, as usual, and also sets the
    event the loop checks after each event, because Python drops an exception raised where it cannot
    propagate (a finalizer the garbage collector runs at that moment): such a Ctrl-C is not lost."""
    pressed = threading.Event()
    if threading.current_thread() is not threading.main_thread():  # signals reach the main thread only
        yield pressed
        return

    def handler(signum, frame):
        pressed.set()
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield pressed
    finally:
        signal.signal(signal.SIGINT, previous)


@dataclass
class Exchange:
    """One question and its answer, with what the user saw of its speed."""

    question: Message
    completion: Completion
    model: str
    turn: Turn
    interrupted: bool = False
    stored: bool = False
    store_error: str | None = None  # why it could not be stored, if it was not
    time_to_first_token: float | None = None  # seconds from asking to the first token (None: none came)
    decode_seconds: float = 0.0  # from the first token to the last

    @property
    def usage(self) -> Usage:
        return self.completion.finish.usage if self.completion.finish else Usage()

    @property
    def finish_reason(self) -> str:
        return self.completion.finish.reason if self.completion.finish else "cancelled"

    @property
    def tokens_per_second(self) -> float | None:
        """Decode speed: the tokens after the first over the time after the first."""
        n = self.usage.completion_tokens
        if n < 2 or self.decode_seconds <= 0:
            return None
        return (n - 1) / self.decode_seconds

    def answer(self) -> Message:
        c = self.completion
        return Message(role="assistant", content=c.text, reasoning=c.reasoning or None)


class NothingToRetry(MlxcliError):
    pass


@dataclass
class ChatSession:
    backend: Backend
    store: ConversationStore | None  # None: keep nothing (--no-store)
    system: str | None = None
    sampling: Sampling = field(default_factory=Sampling)
    response_format: Grammar | None = None  # every answer must match it (--json-schema)
    exchanges: list[Exchange] = field(default_factory=list)
    conversation_id: str | None = None
    images: list[ImageInput] = field(default_factory=list)  # attached (--image, /image): sent with the next question

    def messages(self) -> list[Message]:
        """What the model sees before the next question: the system prompt and the history."""
        history = [m for e in self.exchanges for m in (e.question, e.answer())]
        return ([Message(role="system", content=self.system)] if self.system else []) + history

    def ask(self, text: str, on_event: Callable[[Event], None] = lambda _e: None) -> Exchange:
        exchange = self._run(Message(role="user", content=text, images=list(self.images)), on_event)
        self.images.clear()  # kept when the question fails, for the next try
        return exchange

    def retry(self, on_event: Callable[[Event], None] = lambda _e: None) -> Exchange:
        """Ask the last question again; the new answer replaces the old one (which stays in the store)."""
        if not self.exchanges:
            raise NothingToRetry("nothing to retry yet")
        last = self.exchanges.pop()
        try:
            return self._run(last.question, on_event)
        except BaseException:
            self.exchanges.append(last)
            raise

    def clear(self) -> None:
        """Start a new conversation (the system prompt stays)."""
        self.exchanges = []
        self.conversation_id = None

    def _run(self, question: Message, on_event: Callable[[Event], None]) -> Exchange:
        request = ChatRequest(messages=self.messages() + [question], sampling=self.sampling, response_format=self.response_format)
        collector = Collector()
        created_at = time.time()
        started = time.perf_counter()
        first = last = None
        interrupted = False
        reply = None
        try:
            with ctrl_c() as pressed:
                reply = self.backend.stream(request)
                for event in reply:
                    if isinstance(event, (TextDelta, ReasoningDelta)):
                        last = time.perf_counter()
                        first = last if first is None else first
                    collector.feed(event)
                    on_event(event)
                    if pressed.is_set():
                        raise KeyboardInterrupt
        except KeyboardInterrupt:
            interrupted = True
        finally:
            usage = reply.cancel() if reply is not None else Usage()
        completion = collector.completion()
        if interrupted:
            completion.finish = Finish("cancelled", usage)
        exchange = Exchange(
            question=question,
            completion=completion,
            model=self.backend.model,
            turn=self._turn(question, completion, created_at, interrupted),
            interrupted=interrupted,
            time_to_first_token=None if first is None else first - started,
            decode_seconds=(last - first) if first is not None and last is not None else 0.0,
        )
        self._store(exchange)
        self.exchanges.append(exchange)
        return exchange

    def _turn(self, question: Message, completion: Completion, created_at: float, interrupted: bool) -> Turn:
        turn = Turn.from_exchange(
            new_id(TURN_PREFIX), SOURCE, self.backend.model, [question], completion,
            previous_id=self.exchanges[-1].turn.id if self.exchanges else None,
            created_at=created_at,
        )
        turn.instructions = self.system  # the system prompt this answer was given
        if interrupted:
            turn.status = "incomplete"
        return turn

    def _store(self, exchange: Exchange) -> None:
        if self.store is None:
            return
        try:
            self.store.record(exchange.turn)
        except StoreFailure as exc:  # the chat goes on; the footer says it was not stored
            exchange.store_error = exc.message
            return
        exchange.stored = True
        self.conversation_id = exchange.turn.conversation_id

    def conversation(self) -> Conversation:
        """The conversation as it stands (retried answers replaced), in the store's export shape."""
        turns = [e.turn for e in self.exchanges]
        return Conversation(
            id=self.conversation_id or "unsaved",
            created_at=turns[0].created_at if turns else time.time(),
            updated_at=(turns[-1].completed_at or turns[-1].created_at) if turns else time.time(),
            turns=turns,
        )

    def totals(self) -> Usage:
        total = Usage()
        for e in self.exchanges:
            total.prompt_tokens += e.usage.prompt_tokens
            total.completion_tokens += e.usage.completion_tokens
        return total

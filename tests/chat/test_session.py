"""ChatSession on the real engine (scripted model): history, retry, clear, interrupt, failure, storing."""

from __future__ import annotations

import os
import signal

import pytest

from mlxcli.chat.backends import EngineBackend
from mlxcli.chat.session import ChatSession, NothingToRetry
from mlxcli.core.errors import EngineFailure
from mlxcli.core.events import Finish, ReasoningDelta, TextDelta, Usage
from mlxcli.core.request import Sampling
from mlxcli.store import ConversationStore, StoreSettings
from tests.chat.conftest import LONG_END, turns
from tests.support.models import scripted_of


@pytest.fixture
def store(tmp_path):
    with ConversationStore(StoreSettings.default(tmp_path)) as store:
        yield store


def test_history_is_sent_and_every_exchange_is_stored_as_a_chained_turn(chat_engine, store):
    session = ChatSession(EngineBackend(chat_engine), store, system="Be terse.")
    first = session.ask("hello")
    second = session.ask("and again")
    assert first.completion.text == "Reply 1: hello"
    assert second.completion.text == "Reply 2: and again"
    assert turns(scripted_of(chat_engine).prompts[-1]) == [
        ("system", "Be terse."), ("user", "hello"), ("assistant", "Reply 1: hello"), ("user", "and again"),
    ]
    conversation = store.conversation(session.conversation_id)
    assert [t.id for t in conversation.turns] == [first.turn.id, second.turn.id]
    one, two = conversation.turns
    assert (one.source, one.previous_id, two.previous_id) == ("chat", None, one.id)
    assert [(m.role, m.content) for m in two.input] == [("user", "and again")]  # only what it added
    assert [(m.role, m.content) for m in two.output] == [("assistant", "Reply 2: and again")]
    assert two.instructions == "Be terse." and two.model == "scripted" and two.status == "completed"
    assert two.usage.completion_tokens == second.usage.completion_tokens > 0
    assert second.time_to_first_token is not None and second.tokens_per_second is not None


def test_retry_replaces_the_last_answer_and_keeps_the_old_one_as_a_branch(chat_engine, store):
    session = ChatSession(EngineBackend(chat_engine), store)
    first = session.ask("hello")
    old = session.ask("what now")
    new = session.retry()
    assert new.completion.text == "Reply 2: what now"  # the model saw one earlier question, not two
    assert [e.turn.id for e in session.exchanges] == [first.turn.id, new.turn.id]
    stored = {t.id: t for t in store.conversation(session.conversation_id).turns}
    assert stored[old.turn.id].previous_id == stored[new.turn.id].previous_id == first.turn.id
    assert [t.id for t in store.history(new.turn.id)] == [first.turn.id, new.turn.id]


def test_retry_with_nothing_asked(chat_engine, store):
    with pytest.raises(NothingToRetry):
        ChatSession(EngineBackend(chat_engine), store).retry()


def test_clear_starts_a_new_conversation_and_keeps_the_system_prompt(chat_engine, store):
    session = ChatSession(EngineBackend(chat_engine), store, system="Talk like a pirate.")
    session.ask("hello")
    before = session.conversation_id
    session.clear()
    answer = session.ask("hello again")
    assert answer.completion.text == "Arr! Reply 1: hello again"
    assert session.conversation_id != before
    assert answer.turn.previous_id is None
    assert len(store.conversations()) == 2


def test_system_prompt_changes_apply_to_the_next_answer(chat_engine, store):
    session = ChatSession(EngineBackend(chat_engine), store)
    session.ask("hello")
    session.system = "Talk like a pirate."
    answer = session.ask("ahoy")
    assert answer.completion.text == "Arr! Reply 2: ahoy"
    turns_ = store.conversation(session.conversation_id).turns
    assert [t.instructions for t in turns_] == [None, "Talk like a pirate."]


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")  # the dropped KeyboardInterrupt, as it should be
def test_a_ctrl_c_that_python_drops_still_stops_the_answer(chat_engine, store):
    """A SIGINT whose KeyboardInterrupt lands in a finalizer is dropped by Python ("Exception ignored");
    the answer must stop all the same."""
    scripted_of(chat_engine).step_delay = 0.01
    session = ChatSession(EngineBackend(chat_engine), store)
    seen = []

    class Finalized:
        def __del__(self):  # runs the signal handler where its exception cannot propagate
            os.kill(os.getpid(), signal.SIGINT)
            for _ in range(1000):  # the handler runs here, between bytecodes
                pass

    def ctrl_c_in_a_finalizer(event):
        seen.append(event)
        if len(seen) == 5:
            Finalized()

    stopped = session.ask("tell me a long story", ctrl_c_in_a_finalizer)
    assert stopped.interrupted and stopped.finish_reason == "cancelled"
    assert 5 <= len(seen) < 10 and LONG_END not in stopped.completion.text


def test_interrupting_keeps_the_partial_answer_in_the_conversation_and_the_store(chat_engine, store):
    scripted_of(chat_engine).step_delay = 0.01
    session = ChatSession(EngineBackend(chat_engine), store)
    seen = []

    def stop_after_five(event):
        seen.append(event)
        if len(seen) == 5:
            raise KeyboardInterrupt  # what Ctrl-C does while the answer streams

    stopped = session.ask("tell me a long story", stop_after_five)
    assert stopped.interrupted and stopped.finish_reason == "cancelled"
    partial = stopped.completion.text
    assert partial.startswith("word0") and LONG_END not in partial
    assert partial == "".join(e.text for e in seen if isinstance(e, TextDelta))
    assert 5 <= stopped.usage.completion_tokens < 100  # the engine stopped, it did not run to the end
    turn = store.get(stopped.turn.id)
    assert turn.status == "incomplete" and turn.output[0].content == partial

    scripted_of(chat_engine).step_delay = 0
    after = session.ask("what now")
    assert after.completion.text == "Reply 2: what now"
    assert ("assistant", partial) in turns(scripted_of(chat_engine).prompts[-1])


def test_a_failed_answer_leaves_the_conversation_as_it_was(chat_engine, store):
    session = ChatSession(EngineBackend(chat_engine), store)
    session.ask("hello")
    with pytest.raises(EngineFailure):
        session.ask("break it")
    assert [e.question.content for e in session.exchanges] == ["hello"]
    assert len(store.conversation(session.conversation_id).turns) == 1
    assert session.ask("again").completion.text == "Reply 2: again"


def test_a_failed_retry_keeps_the_old_answer(chat_engine, store):
    session = ChatSession(EngineBackend(chat_engine), store)
    old = session.ask("hello")
    chat_engine.stop(grace=0)
    with pytest.raises(EngineFailure):
        session.retry()
    assert session.exchanges == [old]


def test_sampling_options_reach_the_engine(chat_engine, store):
    session = ChatSession(EngineBackend(chat_engine), store, sampling=Sampling(max_tokens=3))
    answer = session.ask("hello")
    assert answer.finish_reason == "length" and answer.usage.completion_tokens == 3
    assert store.get(answer.turn.id).status == "incomplete"


def test_without_a_store_nothing_is_kept_and_the_chat_works(chat_engine):
    session = ChatSession(EngineBackend(chat_engine), None)
    session.ask("hello")
    answer = session.ask("again")
    assert answer.completion.text == "Reply 2: again" and not answer.stored
    assert session.conversation_id is None
    assert [t.previous_id for t in session.conversation().turns] == [None, session.exchanges[0].turn.id]


def test_a_store_that_fails_is_reported_and_the_chat_goes_on(chat_engine, tmp_path):
    store = ConversationStore(StoreSettings.default(tmp_path))
    session = ChatSession(EngineBackend(chat_engine), store)
    store.close()  # every write now fails
    answer = session.ask("hello")
    assert not answer.stored and "closed" in answer.store_error
    assert session.ask("again").completion.text == "Reply 2: again"


class ReasoningBackend:
    """A backend whose model reasons first (the engine's reasoning parser is another engineer's work)."""

    model = "thinker"
    where = "test"

    def stream(self, request):
        events = [ReasoningDelta("Let me think.\n"), ReasoningDelta("Two plus two."), TextDelta("It is 4."),
                  Finish("stop", Usage(prompt_tokens=5, completion_tokens=9))]

        class Reply:
            def __iter__(self):
                return iter(events)

            def cancel(self):
                return Usage()

        return Reply()

    def close(self):
        pass


def test_reasoning_is_kept_apart_from_the_answer(store):
    session = ChatSession(ReasoningBackend(), store)
    answer = session.ask("2+2?")
    assert (answer.completion.text, answer.completion.reasoning) == ("It is 4.", "Let me think.\nTwo plus two.")
    stored = store.get(answer.turn.id).output[0]
    assert (stored.content, stored.reasoning) == ("It is 4.", "Let me think.\nTwo plus two.")
    assert session.messages()[-1].reasoning == "Let me think.\nTwo plus two."

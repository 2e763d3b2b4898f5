"""The store behind the HTTP API: restarts, TTL archiving and continuing from an archive, Chat Completions
storage, and a store that fails (the answer must then fail too, never be acknowledged unstored)."""

from __future__ import annotations

import httpx
import openai
import pytest

from mlxcli.server.settings import ServerSettings
from mlxcli.store import ConversationStore, StoreSettings
from tests.server.test_openai_responses import assert_in_order, error_of, last_user, stream_raw
from tests.support.models import Recording
from tests.support.server import RunningServer
from tests.support.streams import check_responses_stream


class Clock:
    def __init__(self):
        self.t = 1_000_000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def recording():
    return Recording(lambda prompt: f"Noted: {last_user(prompt)}")


@pytest.fixture
def engine(scripted_engine, recording):
    return scripted_engine(recording)


def client_for(server: RunningServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)


def test_restart_and_continue(engine, recording, tmp_path):
    settings = StoreSettings.default(tmp_path)
    store = ConversationStore(settings).start()
    with RunningServer(engine, store=store) as server:
        client = client_for(server)
        r1 = client.responses.create(model="m", input="my name is Ada")
        with client.responses.stream(model="m", input="I like tea", previous_response_id=r1.id) as stream:
            r2 = stream.get_final_response()
    store.close()

    store = ConversationStore(settings).start()  # a new server process would open it like this
    with RunningServer(engine, store=store) as server:
        client = client_for(server)
        r3 = client.responses.create(model="m", input="what do you know?", previous_response_id=r2.id)
        assert_in_order(
            recording.prompts[-1],
            ["my name is Ada", r1.output_text, "I like tea", r2.output_text, "what do you know?"],
        )
        assert client.responses.retrieve(r1.id).model_dump() == r1.model_dump()
        assert [i.content[0].text for i in client.responses.input_items.list(r2.id)] == ["I like tea"]
        assert r3.previous_response_id == r2.id
    store.close()


def test_archive_by_ttl_then_continue_from_the_archive(engine, recording, tmp_path):
    clock = Clock()
    settings = StoreSettings.default(tmp_path, ttl_seconds=3600)
    store = ConversationStore(settings, clock=clock)
    with RunningServer(engine, store=store) as server:
        client = client_for(server)
        r1 = client.responses.create(model="m", input="remember the number 42")
        r2 = client.responses.create(model="m", input="and the colour blue", previous_response_id=r1.id)
        conversation_id = store.get(r2.id).conversation_id

        clock.t += 3601
        assert store.archive_due() == [conversation_id]
        assert (settings.archive_dir / f"{conversation_id}.json").exists()
        assert store.totals() == (0, 0, 0)  # gone from the hot store

        # readable from the archive through the API
        assert client.responses.retrieve(r1.id).model_dump() == r1.model_dump()
        assert [i.content[0].text for i in client.responses.input_items.list(r2.id)] == ["and the colour blue"]

        # continuing loads it back: the model sees both archived turns
        r3 = client.responses.create(model="m", input="what did I say?", previous_response_id=r2.id)
        assert_in_order(
            recording.prompts[-1],
            ["remember the number 42", r1.output_text, "and the colour blue", r2.output_text, "what did I say?"],
        )
        conversation = store.conversation(r3.id)
        assert conversation.id == conversation_id and not conversation.archived
        assert [t.id for t in conversation.turns] == [r1.id, r2.id, r3.id]

        # an archived response can be deleted too
        clock.t += 3601
        store.archive_due()
        client.responses.delete(r1.id)
        with pytest.raises(openai.NotFoundError):
            client.responses.retrieve(r1.id)
        assert client.responses.retrieve(r3.id).id == r3.id
    store.close()


def test_chat_completions_are_stored_only_when_asked(engine):
    store = ConversationStore.memory()
    messages = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "store this"}]
    with RunningServer(engine, store=store) as server:
        client = client_for(server)
        plain = client.chat.completions.create(model="m", messages=messages)
        asked = client.chat.completions.create(model="m", messages=messages, store=True)
        streamed = list(client.chat.completions.create(model="m", messages=messages, store=True, stream=True))
        assert store.get(plain.id) is None
        turn = store.get(asked.id)
        assert turn.source == "chat.completions" and turn.model == "scripted"
        assert [(m.role, m.content) for m in turn.input] == [("system", "be brief"), ("user", "store this")]
        assert turn.output[0].content == asked.choices[0].message.content == "Noted: store this"
        assert turn.usage.completion_tokens == asked.usage.completion_tokens
        assert store.get(streamed[0].id).output[0].content == "Noted: store this"  # the streamed id is the stored id


def test_store_chat_flag(engine):
    store = ConversationStore.memory()
    with RunningServer(engine, ServerSettings(port=0, store_chat=True), store=store) as server:
        client = client_for(server)
        by_default = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "a"}])
        refused = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "b"}], store=False)
        assert store.get(by_default.id) is not None
        assert store.get(refused.id) is None


def test_store_chat_flag_stores_anthropic_messages(engine):
    import anthropic

    store = ConversationStore.memory()
    with RunningServer(engine, ServerSettings(port=0, store_chat=True), store=store) as server:
        client = anthropic.Anthropic(base_url=server.url, api_key="unused", max_retries=0)
        plain = client.messages.create(model="m", max_tokens=50, messages=[{"role": "user", "content": "keep me"}])
        with client.messages.stream(model="m", max_tokens=50, messages=[{"role": "user", "content": "me too"}]) as s:
            streamed = s.get_final_message()
        turn = store.get(plain.id)
        assert turn.source == "messages" and turn.output[0].content == "Noted: keep me"
        assert store.get(streamed.id).output[0].content == "Noted: me too"  # the streamed id is the stored id


def test_a_failing_store_fails_the_answer(engine):
    store = ConversationStore.memory()
    store.close()  # every write now fails
    with RunningServer(engine, store=store) as server:
        err = error_of(httpx.post(server.url + "/v1/responses", json={"input": "x"}), 500)
        assert "store" in err["message"]
        final = check_responses_stream(stream_raw(server, {"input": "x"}))
        assert final["status"] == "failed" and "store" in final["error"]["message"]
        # not stored: no store needed, so it still works
        ok = httpx.post(server.url + "/v1/responses", json={"input": "x", "store": False})
        assert ok.status_code == 200 and ok.json()["status"] == "completed"

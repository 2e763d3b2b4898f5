"""The chat backend over HTTP (`mlxcli chat --url`): the model it asks for, and whole sessions over each API.

The stream readers themselves are tested in tests/client.
"""

from __future__ import annotations

import httpx
import pytest

from mlxcli.chat.http import HttpBackend
from mlxcli.chat.session import ChatSession
from mlxcli.client import NAMES, ServerError
from mlxcli.core.collect import collect
from mlxcli.core.request import ChatRequest, Message
from mlxcli.server.settings import ServerSettings
from tests.chat.conftest import LONG_END
from tests.support.http import wait_for
from tests.support.models import scripted_of


def ask(text: str) -> ChatRequest:
    return ChatRequest(messages=[Message("user", text)])


@pytest.mark.parametrize("api", NAMES)
def test_a_whole_session_over_each_api(api, chat_engine, serve, tmp_path):
    from mlxcli.store import ConversationStore, StoreSettings

    server = serve(chat_engine)
    backend = HttpBackend(server.url + "/v1", api=api)
    assert backend.model == "scripted"  # the server's first model, from /v1/models
    assert backend.where == server.url + {"chat": "/v1/chat/completions", "responses": "/v1/responses",
                                          "anthropic": "/v1/messages", "ollama": "/api/chat"}[api]
    with ConversationStore(StoreSettings.default(tmp_path)) as store:
        session = ChatSession(backend, store, system="Talk like a pirate.")
        assert session.ask("hello").completion.text == "Arr! Reply 1: hello"
        again = session.ask("again")  # the history went along
        assert again.completion.text == "Arr! Reply 2: again" and again.usage.completion_tokens > 0
        assert len(store.conversation(session.conversation_id).turns) == 2
    backend.close()


def test_cancel_stops_generation_on_the_server(chat_engine, serve):
    scripted_of(chat_engine).step_delay = 0.02
    server = serve(chat_engine)
    reply = HttpBackend(server.url).stream(ask("tell me a long story"))
    received = ""
    for event in reply:
        received += event.text
        if len(received) > 20:
            break
    reply.cancel()
    assert wait_for(lambda: chat_engine.stats()["active_requests"] == 0, timeout=5)
    assert LONG_END not in received


def test_api_keys(chat_engine, serve):
    server = serve(chat_engine, ServerSettings(port=0, api_keys=["sesame"]))
    with pytest.raises(ServerError, match=r"401.*pass --api-key"):
        HttpBackend(server.url)
    for api in NAMES:
        assert collect(HttpBackend(server.url, api=api, api_key="sesame").stream(ask("hi"))).text == "Reply 1: hi"


def test_an_unreachable_server():
    with pytest.raises(ServerError, match=r"^cannot reach http://127.0.0.1:9: "):
        HttpBackend("http://127.0.0.1:9", model="m")


def listing(status: int, body: bytes = b"") -> httpx.MockTransport:
    return httpx.MockTransport(lambda request: httpx.Response(status, content=body))


def test_a_server_without_a_model_list_needs_a_model_name():
    with pytest.raises(ServerError, match=r"cannot list the models of http://other.example \(the server answered 404: .*\); name one with --model"):
        HttpBackend("http://other.example", transport=listing(404, b'{"detail": "Not Found"}'))
    assert HttpBackend("http://other.example", model="m", transport=listing(404)).model == "m"
    assert HttpBackend("http://other.example", model="m", transport=listing(200, b"<html>")).model == "m"
    with pytest.raises(ServerError, match="lists no model; name one with --model"):
        HttpBackend("http://other.example", transport=listing(200, b'{"object": "list", "data": []}'))
    with pytest.raises(ServerError, match="answered 403"):  # a refusal is not a missing list
        HttpBackend("http://other.example", model="m", transport=listing(403))

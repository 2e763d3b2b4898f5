"""Requests whose head is not HTTP get a 400 in OpenAI's shape and a closed connection, never silence."""

from __future__ import annotations

import socket
import threading

import orjson
import pytest

HEADS = {
    "nul in a header": b"GET /v1/models HTTP/1.1\r\nHost: localhost\r\nX-Bad: a\x00b\r\n\r\n",
    "control character in a header": b"GET /v1/models HTTP/1.1\r\nHost: localhost\r\nX-Bad: a\x01b\r\n\r\n",
    "header line without a colon": b"GET /v1/models HTTP/1.1\r\nHost: localhost\r\nno colon here\r\n\r\n",
    "space in a header name": b"GET /v1/models HTTP/1.1\r\nHost: localhost\r\nBad Name: x\r\n\r\n",
    "garbage request line": b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03\r\n\r\n",
    "request line without a version": b"GET\r\n\r\n",
}


@pytest.fixture(scope="module")
def server(tokenizer_dir):
    from mlxcli.engine.engine import EngineSettings, MlxEngine
    from tests.support.models import scripted_model
    from tests.support.server import RunningServer

    engine = MlxEngine([scripted_model(tokenizer_dir, lambda prompt: "ok")], EngineSettings(temperature=0.0)).start()
    with RunningServer(engine) as srv:
        yield srv
    engine.stop(grace=1)


def exchange(port: int, head: bytes) -> bytes:
    """Send ``head`` and read until the server closes the connection (a socket timeout fails the test)."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(head)
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    return reply


@pytest.mark.parametrize("head", HEADS.values(), ids=HEADS.keys())
def test_a_malformed_head_gets_a_400_in_openai_shape_and_the_connection_closes(server, head):
    reply = exchange(server.http.port, head)
    status_line, _, rest = reply.partition(b"\r\n")
    assert status_line.startswith(b"HTTP/1.") and b" 400 " in status_line, reply[:200]
    body = orjson.loads(rest.split(b"\r\n\r\n", 1)[1])
    assert body["error"]["type"] == "invalid_request_error" and body["error"]["message"]


def test_many_malformed_heads_do_not_stop_a_normal_request(server):
    import httpx

    replies: list[bytes] = []
    threads = [threading.Thread(target=lambda: replies.append(exchange(server.http.port, HEADS["nul in a header"]))) for _ in range(200)]
    for t in threads:
        t.start()
    r = httpx.post(server.url + "/v1/chat/completions", json={"messages": [{"role": "user", "content": "hi"}]}, timeout=60)
    for t in threads:
        t.join(60)
    assert r.status_code == 200 and r.json()["choices"][0]["message"]["content"] == "ok"
    assert len(replies) == 200 and all(b" 400 " in reply.split(b"\r\n", 1)[0] for reply in replies)

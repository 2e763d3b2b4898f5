"""The URL rule, the stream framings and the error shapes: pure functions, no server."""

from __future__ import annotations

import pytest

from mlxcli.client import server_root
from mlxcli.client.errors import error_detail, refusal
from mlxcli.client.streams import ndjson_lines, sse_events
from mlxcli.core.errors import InvalidRequest


@pytest.mark.parametrize(
    "given, root",
    [
        ("127.0.0.1:8000", "http://127.0.0.1:8000"),
        ("localhost:8000/", "http://localhost:8000"),
        ("http://127.0.0.1:8000", "http://127.0.0.1:8000"),
        ("http://127.0.0.1:8000/", "http://127.0.0.1:8000"),
        ("http://127.0.0.1:8000/v1", "http://127.0.0.1:8000"),
        ("http://127.0.0.1:8000/v1/", "http://127.0.0.1:8000"),
        (" http://127.0.0.1:8000//v1// ", "http://127.0.0.1:8000"),
        ("http://127.0.0.1:8000/v1/chat/completions", "http://127.0.0.1:8000"),
        ("http://127.0.0.1:8000/v1/messages", "http://127.0.0.1:8000"),
        ("https://gateway.example/openai/v1", "https://gateway.example/openai"),
        ("https://gateway.example/openai", "https://gateway.example/openai"),
        ("http://[::1]:8000/v1?x=1", "http://[::1]:8000"),
        ("http://host/v10", "http://host/v10"),  # only a whole /v1 segment goes
    ],
)
def test_every_form_names_the_server_root(given, root):
    assert server_root(given) == root


@pytest.mark.parametrize("bad", ["", "ftp://host", "http://", "http://host:port"])
def test_what_is_not_a_server_address(bad):
    with pytest.raises(InvalidRequest, match="not a server address"):
        server_root(bad)


def test_sse_framing():
    lines = [
        ": keep-alive", "",
        "event: response.created", 'data: {"x":', "data: 1}", "",
        "id: 7", "retry: 100", "data: [DONE]", "",
        "event: ping", "",  # an event without data: nothing
        "data:no-space\r", "",
        "data: tail",
    ]
    assert list(sse_events(lines)) == [
        ("response.created", '{"x":\n1}'), (None, "[DONE]"), (None, "no-space"), (None, "tail"),
    ]


def test_ndjson_framing():
    lines = ['{"message": {"content": "Hi"}}', "", "  ", '{"done": true}']
    assert list(ndjson_lines(lines)) == [(None, '{"message": {"content": "Hi"}}'), (None, '{"done": true}')]


@pytest.mark.parametrize(
    "body, detail",
    [
        ({"error": {"message": "bad", "type": "invalid_request_error", "param": None, "code": None}}, ("bad", "invalid_request_error")),
        ({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}, ("Overloaded", "overloaded_error")),
        ({"error": {"code": "DeploymentNotFound", "message": "gone"}}, ("gone", "DeploymentNotFound")),
        ({"type": "error", "code": "server_error", "message": "broke", "param": None}, ("broke", "server_error")),
        ({"error": "plain"}, ("plain", None)),
        ({"detail": "Not Found"}, ("Not Found", None)),
        (["not", "an", "object"], (None, None)),
    ],
)
def test_error_shapes(body, detail):
    assert error_detail(body) == detail


def test_refusals_carry_status_type_and_retry_after():
    err = refusal(529, b'{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}', {"retry-after": "1"})
    assert (err.message, err.http_status, err.error_type, err.retry_after, err.overloaded) == (
        "the server answered 529: Overloaded", 529, "overloaded_error", 1.0, True)
    assert refusal(404, b"<html>\n  Not   here </html>").message == "the server answered 404: <html> Not here </html>"
    assert refusal(502, b"").message == "the server answered 502: Bad Gateway"
    assert refusal(401, b'{"error": {"message": "Incorrect API key"}}').message.endswith("Incorrect API key (pass --api-key)")

"""Raw-HTTP helpers for server tests: error-shape checks, sockets the test hangs up, waiting."""

from __future__ import annotations

import json
import socket
import time

import httpx

CHAT = "/v1/chat/completions"
TOKEN = b'{"content":"'  # a chunk carrying generated text (the first chunk is {"role":...,"content":""})


def openai_error(r: httpx.Response, status: int) -> dict:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}, body
    assert body["error"]["message"] and "Traceback" not in r.text
    return body["error"]


def anthropic_error(r: httpx.Response, status: int, kind: str) -> str:
    assert r.status_code == status, r.text
    body = r.json()
    assert body["type"] == "error" and set(body["error"]) == {"type", "message"}, body
    assert body["error"]["type"] == kind
    return body["error"]["message"]


def azure_error(r: httpx.Response, status: int) -> dict:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}, body
    return body["error"]


def raw_http(port: int, data: bytes, timeout: float = 15) -> tuple[int, dict[str, str], bytes]:
    """Send raw bytes; read the answer until the server closes (waitress closes after its errors)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        try:
            sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed before reading everything
        chunks = []
        while True:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            chunks.append(chunk)
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines[1:] if ": " in line)
    return int(lines[0].split()[1]), headers, body


def open_stream(
    port: int, content: str, path: str = CHAT, stream: bool = True, headers: dict[str, str] | None = None, **fields
) -> socket.socket:
    """A raw chat request left open, so that the test decides when the client hangs up."""
    body = json.dumps({"messages": [{"role": "user", "content": content}], "stream": stream, **fields}).encode()
    extra = "".join(f"{name}: {value}\r\n" for name, value in (headers or {}).items())
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sock.sendall(
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n{extra}"
        f"Content-Length: {len(body)}\r\n\r\n".encode() + body
    )
    return sock


def read_until(sock: socket.socket, marker: bytes, count: int = 1) -> bytes:
    data = b""
    while data.count(marker) < count:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed early: {data[-500:]!r}"
        data += chunk
    return data


def wait_for(condition, timeout: float = 10.0, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return condition()


def settled(read, quiet: float = 0.5, timeout: float = 10.0):
    """Wait until ``read()`` stops changing for ``quiet`` seconds; return (value, seconds waited)."""
    started = time.monotonic()
    value, since = read(), time.monotonic()
    while time.monotonic() - started < timeout:
        time.sleep(0.05)
        now = read()
        if now != value:
            value, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return value, since - started
    raise AssertionError(f"still changing after {timeout}s")

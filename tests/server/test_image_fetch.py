"""The image URL fetcher (server/images.py) against a local HTTP server: off by default, then its
address, size, time and redirect limits. Loopback is reachable only under ``allow_private``, a
setting only tests use."""

from __future__ import annotations

import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from mlxcli.core.errors import InvalidRequest
from mlxcli.engine.engine import EngineSettings, MlxEngine
from mlxcli.engine.kinds import served_model
from mlxcli.server import images
from mlxcli.server.images import FetchPolicy
from mlxcli.server.settings import ServerSettings
from tests.support.http import openai_error
from tests.support.server import RunningServer
from tests.support.vision_models import noise_png

PNG = noise_png(1)
LOCAL = FetchPolicy(allow=True, allow_private=True, timeout=2.0)
stop = threading.Event()
hosts: list[str] = []  # the Host header of each request the origin got


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):  # quiet
        pass

    def do_GET(self):
        hosts.append(self.headers["Host"])
        port = self.server.server_address[1]
        routes = {
            "/a.png": lambda: self._send(PNG),
            "/chunked.png": lambda: self._send(PNG, length=False),
            "/same-host": lambda: self._redirect(f"http://127.0.0.1:{port}/a.png"),
            "/other-host": lambda: self._redirect(f"http://localhost:{port}/a.png"),
            "/loop": lambda: self._redirect("/loop"),
            "/missing": lambda: self._send(b"no", status=404),
            "/slow.png": self._trickle,
        }
        routes[self.path]()

    def _send(self, body: bytes, *, status: int = 200, length: bool = True):
        self.send_response(status)
        self.send_header("Content-Type", "image/png")
        if length:
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        else:  # HTTP/1.0 without a length: the body ends when the connection closes
            self.end_headers()
            self.wfile.write(body)

    def _redirect(self, location: str):
        self.send_response(302)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _trickle(self):
        """A byte every 50 ms, until the test ends: each read is quick, the whole fetch never ends."""
        self.send_response(200)
        self.end_headers()
        while not stop.wait(0.05):
            try:
                self.wfile.write(b"x")
                self.wfile.flush()
            except OSError:
                return


@pytest.fixture(scope="module")
def origin():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    stop.set()
    httpd.shutdown()


def fetch(url: str, policy: FetchPolicy = LOCAL):
    with images.fetching(policy):
        return images.from_url(url, "messages[0].content[0].image_url.url")


def refusal(url: str, policy: FetchPolicy = LOCAL) -> str:
    with pytest.raises(InvalidRequest) as info:
        fetch(url, policy)
    assert info.value.param == "messages[0].content[0].image_url.url"
    return info.value.message


def test_fetches_an_image_when_allowed(origin):
    assert fetch(origin + "/a.png").digest == images.decode(PNG, "x").digest
    assert fetch(origin + "/chunked.png").digest == images.decode(PNG, "x").digest


def test_off_by_default(origin):
    assert "--allow-image-urls" in refusal(origin + "/a.png", FetchPolicy())


@pytest.mark.parametrize("url", ["http://127.0.0.1:9/a.png", "http://[::1]/a.png", "http://10.1.2.3/a.png",
                                 "http://192.168.0.1/a.png", "http://169.254.169.254/latest/meta-data", "http://localhost/a.png"])
def test_refuses_loopback_and_private_addresses(url):
    assert "non-public address" in refusal(url, FetchPolicy(allow=True))


def test_size_limit(origin):
    small = FetchPolicy(allow=True, allow_private=True, max_bytes=len(PNG) - 1)
    assert "larger than" in refusal(origin + "/a.png", small)  # refused by its Content-Length
    assert "larger than" in refusal(origin + "/chunked.png", small)  # refused while reading


def test_time_limit(origin):
    assert "took longer than 0.3s" in refusal(origin + "/slow.png", FetchPolicy(allow=True, allow_private=True, timeout=0.3))


def test_redirects(origin):
    assert fetch(origin + "/same-host").digest == images.decode(PNG, "x").digest
    assert "another host" in refusal(origin + "/other-host")
    assert "redirects more than" in refusal(origin + "/loop")
    assert "HTTP 404" in refusal(origin + "/missing")


def test_the_fetch_goes_to_the_address_that_was_checked(origin, monkeypatch):
    """A host that resolves to a checked address once, then elsewhere (DNS rebinding): the fetch
    connects to the checked address, naming the host in ``Host``; it never asks DNS again."""
    real = socket.getaddrinfo
    answers = iter([real("127.0.0.1", 0, type=socket.SOCK_STREAM)])

    def rebinding(host, *args, **kwargs):
        if host != "pinned.test":
            return real(host, *args, **kwargs)
        port = args[0] if args else kwargs.get("port")
        first = next(answers, None)
        if first is None:
            raise socket.gaierror("a second lookup would rebind")
        return [(*info[:4], (info[4][0], port)) for info in first]

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    port = origin.rsplit(":", 1)[1]
    assert fetch(f"http://pinned.test:{port}/a.png").digest == images.decode(PNG, "x").digest
    assert hosts[-1] == f"pinned.test:{port}"


def test_through_the_server(origin, tiny_vlm_dir):
    settings = EngineSettings(temperature=0.0, max_tokens=4)
    engine = MlxEngine([served_model("tiny-vl", tiny_vlm_dir, settings)], settings).start()
    try:
        for policy, status in ((LOCAL, 200), (FetchPolicy(allow=True), 400)):
            with RunningServer(engine, ServerSettings(port=0, image_fetch=policy)) as server:
                part = {"type": "image_url", "image_url": {"url": origin + "/a.png"}}
                r = httpx.post(server.url + "/v1/chat/completions", json={"messages": [{"role": "user", "content": [part]}]}, timeout=30)
                if status == 400:
                    assert "non-public" in openai_error(r, 400)["message"]
                else:
                    assert r.status_code == 200 and r.json()["choices"][0]["message"]["content"]
    finally:
        engine.stop(grace=1)

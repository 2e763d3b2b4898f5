"""The web page's files over HTTP (no browser): what is served, under which headers, to whom.
What the page does in a browser is tests/ui/."""

from __future__ import annotations

import re

import falcon.testing
import httpx
import pytest

from mlxcli.server.app import create_app
from mlxcli.server.settings import ServerSettings
from mlxcli.server.ui import ASSETS, CSP
from tests.support.fake_engine import EchoEngine
from tests.support.http import openai_error
from tests.support.server import RunningServer

KEY = "sk-ui"


@pytest.fixture(scope="module")
def server():
    with RunningServer(EchoEngine(), ServerSettings(port=0, api_keys=[KEY])) as srv:
        yield srv


def test_the_page_and_its_files_are_served_under_a_strict_csp_without_a_key(server):
    page = httpx.get(server.url + "/ui")
    assert page.status_code == 200 and page.headers["content-type"] == "text/html; charset=utf-8"
    csp = page.headers["content-security-policy"]
    assert csp == CSP and "default-src 'none'" in csp and "script-src 'self'" in csp and "unsafe" not in csp
    assert page.headers["x-content-type-options"] == "nosniff"
    assert httpx.get(server.url + "/ui/").status_code == 200
    # Everything the page loads is one of the files served here, open like the page (a browser
    # cannot send a key to load them); the API behind them is not.
    html = page.text
    loaded = set(re.findall(r'(?:src|href)="(/ui/[^"]+)"', html))
    for name in ASSETS:
        if name.endswith(".js"):
            r = httpx.get(f"{server.url}/ui/{name}")
            loaded |= set(re.findall(r'from "(/ui/[^"]+)"', r.text))
    assert loaded == {f"/ui/{name}" for name in ASSETS}
    for path in loaded:
        r = httpx.get(server.url + path)
        assert r.status_code == 200 and r.headers["content-security-policy"] == CSP, path
        assert r.headers["content-type"].split(";")[0] in ("text/javascript", "text/css", "image/svg+xml"), path
    assert "<script>" not in html and "style=" not in html  # nothing inline: the CSP would block it
    openai_error(httpx.get(server.url + "/v1/models"), 401)


def test_only_the_shipped_files_are_served(server):
    auth = {"Authorization": f"Bearer {KEY}"}  # anything else under /ui needs the key, like any route
    for path in ("/ui/nope.js", "/ui/..%2F..%2Fpyproject.toml", "/ui/index.html", "/ui/static/app.js", "/ui/__init__.py"):
        assert openai_error(httpx.get(server.url + path, headers=auth), 404)["code"] == "not_found", path
        openai_error(httpx.get(server.url + path), 401)


def test_a_browser_revalidates_the_page_cheaply(server):
    first = httpx.get(server.url + "/ui/app.js")
    again = httpx.get(server.url + "/ui/app.js", headers={"If-None-Match": first.headers["etag"]})
    assert again.status_code == 304 and again.content == b""
    assert first.headers["cache-control"] == "no-cache"


def test_a_browser_at_the_root_is_sent_to_the_page_and_clients_get_ollama_s_answer(server):
    browser = httpx.get(server.url + "/", headers={"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"})
    assert browser.status_code == 303 and browser.headers["location"].endswith("/ui")
    assert httpx.get(server.url + "/", follow_redirects=True, headers={"Accept": "text/html"}).text.startswith("<!")
    client = httpx.get(server.url + "/")  # Ollama's clients and curl: */*
    assert client.status_code == 200 and client.text == "Ollama is running"
    assert httpx.head(server.url + "/").status_code == 200


def test_no_ui_turns_the_page_off():
    with RunningServer(EchoEngine(), ServerSettings(port=0, ui=False)) as srv:
        assert openai_error(httpx.get(srv.url + "/ui"), 404)
        assert openai_error(httpx.get(srv.url + "/ui/app.js"), 404)
        assert httpx.get(srv.url + "/v1/models").status_code == 200
        assert httpx.get(srv.url + "/", headers={"Accept": "text/html"}).text == "Ollama is running"


def post_from(app, origin: str, host: str, **headers):
    client = falcon.testing.TestClient(app)
    body = {"messages": [{"role": "user", "content": "hi"}]}
    return client.simulate_post("/v1/chat/completions", json=body, headers={"Origin": origin, "Host": host, **headers})


def test_the_page_may_call_the_api_from_its_own_origin_where_the_host_is_vetted():
    """The page's POSTs carry its own origin. Reached as a name the Host check allows, or on a
    server that needs an API key, that is not cross-origin; elsewhere only --cors-origins counts
    (a DNS-rebinding page would be "same origin" with any Host on an unchecked, keyless server)."""
    named = create_app(EchoEngine(), ServerSettings(allowed_hosts=["llm.example.com"]))
    assert post_from(named, "https://llm.example.com", "llm.example.com").status_code == 200
    assert post_from(named, "http://evil.example", "llm.example.com").status_code == 403
    keyed = create_app(EchoEngine(), ServerSettings(host="0.0.0.0", api_keys=[KEY]))
    auth = {"Authorization": f"Bearer {KEY}"}
    assert post_from(keyed, "http://192.168.1.20:8000", "192.168.1.20:8000", **auth).status_code == 200
    assert post_from(keyed, "http://192.168.1.20:8001", "192.168.1.20:8000", **auth).status_code == 403
    open_lan = create_app(EchoEngine(), ServerSettings(host="0.0.0.0"))
    assert post_from(open_lan, "http://rebound.example:8000", "rebound.example:8000").status_code == 403

"""``POST /api/pull`` and ``DELETE /api/delete`` through a real server, judged by the ``ollama`` library:
`mlxcli pull`'s resolver with its progress streamed, and deletion only when the server allows it."""

from __future__ import annotations

import httpx
import ollama
import pytest

from mlxcli.models import list_local_models
from mlxcli.server.settings import ServerSettings


@pytest.fixture
def server(home, monkeypatch, scripted_engine, serve):
    monkeypatch.setenv("MLXCLI_HOME", str(home))  # the server's models directory
    return serve(scripted_engine(lambda prompt: "ok"), ServerSettings(port=0, allow_delete=True))


def installed(home) -> list[str]:
    return [m.name for m in list_local_models(home, include_hf=False)]


def test_pull_streams_the_resolvers_progress(server, home, tiny_alias):
    progress = list(ollama.Client(host=server.url).pull("tiny:latest", stream=True))
    statuses = [p.status for p in progress]
    assert statuses[0] == "pulling manifest" and statuses[-1] == "success"
    stages = {p.digest for p in progress if p.digest}
    assert {"download", "verify", "extract", "convert", "check"} <= stages
    verify = [p for p in progress if p.digest == "verify"]
    assert verify[-1].completed == verify[-1].total > 0 and verify[-1].status == "verifying sha256 digest"
    assert installed(home) == ["tiny"]
    again = list(ollama.Client(host=server.url).pull("tiny", stream=True))  # already there: no work
    assert [p.status for p in again] == ["pulling manifest", "success"]
    assert ollama.Client(host=server.url).pull("tiny", stream=False).status == "success"


def test_pull_errors(server, home):
    r = httpx.post(server.url + "/api/pull", json={"model": "no-such-model"})
    lines = r.content.splitlines()
    assert r.status_code == 200 and r.headers["content-type"] == "application/x-ndjson"
    assert httpx.Response(200, content=lines[0]).json() == {"status": "pulling manifest"}
    assert "unknown model 'no-such-model'" in httpx.Response(200, content=lines[-1]).json()["error"] and len(lines) == 2
    with pytest.raises(ollama.ResponseError, match="unknown model") as info:
        ollama.Client(host=server.url).pull("no-such-model", stream=False)
    assert info.value.status_code == 500
    for name in ("/etc/passwd", "../x", "~/x", "a/b/c"):
        r = httpx.post(server.url + "/api/pull", json={"model": name})
        assert r.status_code == 400 and set(r.json()) == {"error"}, name
    assert installed(home) == []


def test_delete(server, home, tiny_alias):
    client = ollama.Client(host=server.url)
    client.pull("tiny", stream=False)
    assert installed(home) == ["tiny"]
    assert client.delete("tiny:latest").status == "success"
    assert installed(home) == []
    with pytest.raises(ollama.ResponseError, match="not found") as info:
        client.delete("tiny")
    assert info.value.status_code == 404
    with pytest.raises(ollama.ResponseError, match="is being served") as info:
        client.delete("scripted")
    assert info.value.status_code == 400

"""`mlxcli ps` over the shared HTTP client: the address forms, and what it says when the server is not one of ours.

(The table itself is checked against a real server in tests/test_models_cli.py.)
"""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from mlxcli.cli import app
from mlxcli.server.settings import ServerSettings
from tests.support.fake_openai import FakeServer


def ps(*args: str):
    return CliRunner().invoke(app, ["ps", *args])


@pytest.mark.parametrize("suffix", ["", "/", "/v1", "/v1/"])
def test_any_address_form(suffix, scripted_engine, serve):
    server = serve(scripted_engine(lambda prompt: "ok"))
    result = ps("--url", server.url + suffix, "--json")
    assert result.exit_code == 0, result.output
    assert [m["name"] for m in json.loads(result.stdout)["models"]] == ["scripted"]
    bare = ps("--url", server.url.removeprefix("http://"))
    assert bare.exit_code == 0 and "scripted" in bare.stdout and "queue: 0 waiting, 0 running" in bare.stdout


def test_not_an_mlxcli_server():
    with FakeServer() as server:
        result = ps("--url", server.url)
        assert result.exit_code == 1
        assert result.stderr == f"error: {server.url}/mlxcli/ps was not found: is this an mlxcli server?\n"

        def html(handler):
            handler.send_response(200)
            handler.send_header("Content-Length", "6")
            handler.end_headers()
            handler.wfile.write(b"<html>")

        server.http.RequestHandlerClass.do_GET = html
        result = ps("--url", server.url)
        assert result.exit_code == 1
        assert result.stderr == f"error: {server.url}/mlxcli/ps did not answer JSON: is this an mlxcli server?\n"


def test_a_refusal_and_an_unreachable_server(scripted_engine, serve):
    server = serve(scripted_engine(lambda prompt: "ok"), ServerSettings(port=0, api_keys=["sesame"]))
    result = ps("--url", server.url)
    assert (result.exit_code, result.stderr) == (1, f"error: {server.url}/mlxcli/ps answered 401 Unauthorized\n")
    assert ps("--url", server.url, "--api-key", "sesame").exit_code == 0
    result = ps("--url", "http://127.0.0.1:9")
    assert result.exit_code == 1 and result.stderr.startswith(
        "error: cannot reach an mlxcli server at http://127.0.0.1:9/mlxcli/ps ([Errno 111]")
    assert result.stderr.endswith("); is `mlxcli serve` running?\n")
    result = ps("--url", "ftp://nowhere")
    assert result.exit_code == 2 and "is not a server address" in result.stderr

"""The server an agent is launched against: one already running, or `mlxcli serve` started as a child.

The child runs in a session of its own, so the Ctrl-C meant for the agent (Claude Code interrupts a turn
with it) does not stop it; it is stopped, as `mlxcli serve` stops on SIGTERM, when the agent exits.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from urllib.parse import urlsplit

import httpx

from mlxcli.core.errors import MlxcliError

START_TIMEOUT = 900.0  # seconds: a first start may pull and convert the model
SERVE = [sys.executable, "-m", "mlxcli", "serve"]  # the server's command, before its --port and --model


class LaunchError(MlxcliError):
    pass


def probe(url: str, api_key: str | None) -> dict | None:
    """The server's ``/health`` answer, or None when nothing answers there."""
    try:
        r = httpx.get(f"{url}/health", headers=_auth(api_key), timeout=3)
    except httpx.HTTPError:
        return None
    return r.json() if r.status_code == 200 else None


def chat_model(url: str, api_key: str | None, model: str | None) -> tuple[str, int]:
    """(served name, context window) of ``model`` (any name the server answers to), or of its first chat model."""
    path = f"/v1/models/{model}" if model else "/v1/models"
    try:
        r = httpx.get(url + path, headers=_auth(api_key), timeout=30)
    except httpx.HTTPError as exc:
        raise LaunchError(f"cannot reach {url}: {exc}") from None
    if r.status_code == 404 and model:
        raise LaunchError(f"{url} does not serve a model named {model!r} (see `mlxcli ps --url {url}`)")
    if r.status_code != 200:
        raise LaunchError(f"{url}{path} answered {r.status_code}: {r.text[:200]}")
    found = [r.json()] if model else r.json().get("data", [])
    chats = [m for m in found if m.get("kind", "chat") == "chat"]
    if not chats:
        raise LaunchError(f"{model!r} is not a chat model" if model else f"{url} serves no chat model")
    return chats[0]["id"], int(chats[0]["context_window"])


class ChildServer:
    """`mlxcli serve` on ``port`` (the default one if free, else any), its output in DATA_DIR/launch/."""

    def __init__(self, port: int, model: str | None):
        from mlxcli.paths import data_home

        self.port = port if _free(port) else _any_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = data_home() / "launch" / f"serve-{self.port}.log"
        self.log.parent.mkdir(parents=True, exist_ok=True)
        command = [*SERVE, "--port", str(self.port)] + (["--model", model] if model else [])
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)

    def wait_ready(self, api_key: str | None) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise LaunchError(f"mlxcli serve exited with status {self.proc.returncode}:\n{self._tail()}")
            if probe(self.url, api_key) is not None:
                return
            time.sleep(0.5)
        self.stop()
        raise LaunchError(f"mlxcli serve did not answer within {START_TIMEOUT:.0f}s:\n{self._tail()}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def _tail(self) -> str:
        lines = self.log.read_text(errors="replace").splitlines()
        return "\n".join(lines[-15:])


def default_port(url: str) -> int:
    parts = urlsplit(url)
    return parts.port or (443 if parts.scheme == "https" else 80)


def _auth(api_key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _any_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]

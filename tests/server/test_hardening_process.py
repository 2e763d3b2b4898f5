"""`mlxcli serve` as a real process under load and signals: overload, memory, API keys from
the environment and a file, graceful shutdown. The tiny random model keeps it fast."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path

import httpx
import orjson
import pytest
from typer.testing import CliRunner

from mlxcli.cli import app
from tests.support.http import CHAT, TOKEN, open_stream, openai_error, read_until
from tests.support.process import ServeProcess

pytestmark = [
    pytest.mark.slow,  # mlxcli serve in subprocesses
    pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads RSS from /proc"),
]

CLIENTS = 16
MAX_QUEUE = 4
MAX_BATCH = 2


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def one_client(url: str, i: int, results: list) -> None:
    """Half the clients stream, half do not; each records how its request ended."""
    body = {"messages": [{"role": "user", "content": f"client {i}"}], "max_tokens": 60, "temperature": 0}
    try:
        if i % 2:
            with httpx.stream("POST", url + CHAT, json={**body, "stream": True}, timeout=60) as r:
                text = r.read().decode()
                if r.status_code == 200:
                    assert text.endswith("data: [DONE]\n\n"), text[-300:]
                    results.append("completed")
                    return
                results.append(refusal(r.status_code, r.headers, text))
        else:
            r = httpx.post(url + CHAT, json=body, timeout=60)
            if r.status_code == 200:
                assert r.json()["choices"][0]["finish_reason"] in ("stop", "length")
                results.append("completed")
            else:
                results.append(refusal(r.status_code, r.headers, r.text))
    except Exception as exc:  # a hang (timeout) or a broken answer
        results.append(f"failed: {exc!r}")


def refusal(status: int, headers, text: str) -> str:
    error = orjson.loads(text)["error"]
    if status == 503 and headers.get("retry-after") == "1" and error["type"] == "server_error" and error["message"]:
        return "refused"
    return f"bad refusal: {status} {text[:200]}"


def burst(url: str) -> tuple[list[str], list[float]]:
    """16 clients at once; meanwhile /health must keep answering quickly."""
    results: list[str] = []
    threads = [threading.Thread(target=one_client, args=(url, i, results)) for i in range(CLIENTS)]
    for t in threads:
        t.start()
    health_times = []
    while any(t.is_alive() for t in threads):
        started = time.monotonic()
        health = httpx.get(url + "/health", timeout=10).json()
        health_times.append(time.monotonic() - started)
        assert health["in_flight"] <= MAX_BATCH + MAX_QUEUE and health["queue_depth"] <= MAX_QUEUE
        time.sleep(0.1)
    for t in threads:
        t.join()
    return results, health_times


def test_sixteen_clients_against_a_queue_of_four(tiny_model_dir, test_home):
    args = ("--max-queue", str(MAX_QUEUE), "--max-batch", str(MAX_BATCH))
    with ServeProcess("--model", str(tiny_model_dir), *args, home=test_home) as proc:
        burst(proc.url)  # warm-up: first-use allocations are not a leak
        baseline = rss_mb(proc.proc.pid)
        for _ in range(2):
            results, health_times = burst(proc.url)
            assert len(results) == CLIENTS
            assert all(r in ("completed", "refused") for r in results), results
            assert results.count("completed") >= 1 and results.count("refused") >= 1, results
            assert max(health_times) < 4.0, health_times  # never behind the generations (a burst takes 4-7 s here)
        health = httpx.get(proc.url + "/health").json()
        assert health["in_flight"] == 0 and health["queue_depth"] == 0 and health["active_requests"] == 0
        after = rss_mb(proc.proc.pid)
        assert after < baseline * 1.10 + 20, f"RSS grew from {baseline:.0f} MB to {after:.0f} MB"
        r = httpx.post(proc.url + CHAT, json={"messages": [{"role": "user", "content": "hi"}], "max_tokens": 5})
        assert r.status_code == 200


def test_api_keys_from_env_and_file(tiny_model_dir, test_home, tmp_path):
    key_file = tmp_path / "keys"
    key_file.write_text("# team keys\nsk-file-1\n\nsk-file-2\n")
    env = {"MLXCLI_API_KEY": "sk-env-1 sk-env-2"}
    with ServeProcess("--model", str(tiny_model_dir), "--api-key-file", str(key_file), home=test_home, env=env) as proc:
        for key in ("sk-env-1", "sk-env-2", "sk-file-1", "sk-file-2"):
            assert httpx.get(proc.url + "/v1/models", headers={"Authorization": f"Bearer {key}"}).status_code == 200
        openai_error(httpx.get(proc.url + "/v1/models", headers={"Authorization": "Bearer # team keys"}), 401)
        openai_error(httpx.get(proc.url + "/v1/models"), 401)
        openai_error(httpx.get(proc.url + "/metrics"), 401)  # like the API, by default
        assert httpx.get(proc.url + "/ui").status_code == 200  # the page asks for the key itself
        assert "chat in a browser: http://127.0.0.1:" in proc.log()


def test_no_ui_and_no_metrics_auth(tiny_model_dir, test_home):
    args = ("--model", str(tiny_model_dir), "--api-key", "sk-1", "--no-ui", "--no-metrics-auth")
    with ServeProcess(*args, home=test_home) as proc:
        assert "mlxcli:requests_total" in httpx.get(proc.url + "/metrics").text
        openai_error(httpx.get(proc.url + "/ui", headers={"Authorization": "Bearer sk-1"}), 404)
        openai_error(httpx.get(proc.url + "/v1/models"), 401)
        assert "chat in a browser" not in proc.log()


def test_sigterm_cancels_a_stream_that_outlives_the_timeout(tiny_model_dir, test_home):
    proc = ServeProcess("--model", str(tiny_model_dir), "--shutdown-timeout", "1", home=test_home)
    try:
        sock = open_stream(proc.port, "write a long story", max_tokens=1800, temperature=1.0)
        read_until(sock, TOKEN, count=5)
        started = time.monotonic()
        proc.proc.send_signal(signal.SIGTERM)
        sock.settimeout(15)
        rest = b""
        while chunk := sock.recv(65536):
            rest += chunk
        sock.close()
        assert proc.proc.wait(timeout=15) == 0
        elapsed = time.monotonic() - started
    finally:
        proc.stop()
    assert elapsed < 1 + 2 + 5, f"took {elapsed:.1f}s to stop"
    assert b"shutting down" in rest and b"[DONE]" not in rest
    log = proc.log()
    assert "received SIGTERM" in log and "cancelling requests still running" in log and log.rstrip().endswith("stopped")


def test_second_sigint_stops_at_once(tiny_model_dir, test_home):
    proc = ServeProcess("--model", str(tiny_model_dir), "--shutdown-timeout", "60", home=test_home)
    try:
        sock = open_stream(proc.port, "write a long story", max_tokens=1800, temperature=1.0)
        read_until(sock, TOKEN, count=5)
        proc.proc.send_signal(signal.SIGINT)
        time.sleep(0.5)
        assert proc.proc.poll() is None  # still finishing the stream
        started = time.monotonic()
        proc.proc.send_signal(signal.SIGINT)
        assert proc.proc.wait(timeout=15) == 0
        assert time.monotonic() - started < 6
        sock.close()
    finally:
        proc.stop()
    assert "received SIGINT again" in proc.log()


def test_threads_too_few_for_the_queue_is_refused_before_loading():
    result = CliRunner().invoke(app, ["serve", "--model", "/nonexistent/model", "--max-queue", "8", "--threads", "9"])
    assert result.exit_code == 1
    assert "threads (9) must exceed" in result.output

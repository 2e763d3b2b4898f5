"""What the driver does between the mix's scenarios: the warm-up after each start, quiet points (the mix paused,
nothing may stay in flight, then the server measured), bursts beyond the queue's bound (clean refusals, then the
queue back to 0), and a model swap (a third chat model loaded, evicting one, then unloaded with keep_alive 0)."""

from __future__ import annotations

import os
import random
import threading
from collections import Counter
from typing import Any

import httpx

from tests.support.http import settled, wait_for
from tests.support.soak.agents import CONVERSATIONS, MODEL
from tests.support.soak.calls import PATHS, TIMEOUT, Overload, Wrong, check_stream, refusal, stream
from tests.support.soak.mix import APIS, ONE_SHOT, Gate, Session, Shared, image
from tests.support.soak.record import Recorder, Sample
from tests.support.soak.server import SWAP, SoakServer

BURST_REPEAT = 12  # a burst's answers: long enough (~80 tokens) that the burst is still running when its last request arrives


def warm_up(server: SoakServer, rec: Recorder, shared: Shared, http_threads: int) -> None:
    """Before the mix (again after the crash leg's restart), every scenario on each of its APIs once (every model
    loaded, the structured outputs' tokenizer built, ...) and an image through every HTTP worker thread (waitress
    hands tasks to idle threads in turn; a thread that prepared an image keeps an MLX thread for its life): what
    grows afterwards grows with the traffic."""
    ready = threading.Event()
    ready.set()
    session = Session(server.url, rec, random.Random(0), shared, ready)
    try:
        for conversation in CONVERSATIONS:
            conversation(session).turn()
        for name, apis in APIS.items():
            for api in apis:
                ONE_SHOT[name](session, api)
        for i in range(http_threads + 4):
            image(session, APIS["image"][i % 2])
    except Wrong as exc:
        rec.violation(exc.check, f"warm-up: {exc.detail}")
    finally:
        session.close()
    swap(server, rec)


def quiet_point(server: SoakServer, rec: Recorder, gate: Gate, settle: float = 120) -> Sample | None:
    """Pause the mix; every request (streams its clients left included) must be over, and the queue empty."""
    with gate.paused(timeout=300) as stopped:
        if not stopped:
            rec.violation("pause", "a worker was still in a scenario after 300 s")
        health: dict[str, Any] = {}

        def idle() -> bool:
            health.update(server.health())
            return health["in_flight"] == 0 and health["active_requests"] == 0 and health["queue_depth"] == 0

        if not wait_for(idle, timeout=settle, interval=0.1):
            rec.violation("quiet point", f"with the mix paused {settle:g}s: in_flight {health['in_flight']}, "
                          f"active {health['active_requests']}, queue {health['queue_depth']}")
        try:  # the clients closed their connections: let the server see every close
            settled(lambda: len(os.listdir(f"/proc/{server.proc.pid}/fd")), quiet=1.0, timeout=15)
        except AssertionError:
            pass  # still changing: the sample says how many
        sample = server.sample(rec.now(), quiet=True)
        rec.sample(sample)
        return sample


def _burst_body(api: str, nonce: str) -> dict[str, Any]:
    messages = [{"role": "user", "content": f"Say {nonce} REPEAT-{BURST_REPEAT}"}]
    return {
        "chat": {"model": MODEL, "messages": messages, "max_tokens": 400},
        "anthropic": {"model": MODEL, "messages": messages, "max_tokens": 400},
        "responses": {"model": MODEL, "input": messages, "max_output_tokens": 400, "store": False},
        "ollama": {"model": MODEL, "messages": messages, "stream": False},
    }[api]


def _burst_text(api: str, body: dict[str, Any]) -> str:
    if api == "chat":
        return body["choices"][0]["message"]["content"]
    if api == "anthropic":
        return "".join(b["text"] for b in body["content"] if b["type"] == "text")
    if api == "responses":
        return "".join(p["text"] for i in body["output"] if i["type"] == "message" for p in i["content"])
    return body["message"]["content"]


def burst(server: SoakServer, rec: Recorder, size: int, number: int) -> dict[str, Any]:
    """``size`` long requests at once (more than the server admits): each answered, or refused at once with
    503/529 and Retry-After; then the queue drains to 0."""
    started = rec.now()
    statuses: Counter = Counter()
    barrier = threading.Barrier(size)
    lock = threading.Lock()
    apis = ("chat", "anthropic", "responses", "ollama")

    def one(i: int) -> None:
        api, nonce = apis[i % len(apis)], f"NONCE-b{number}x{i}"
        status = 0
        try:
            with httpx.Client(base_url=server.url, timeout=TIMEOUT) as client:
                barrier.wait(60)
                r = client.post(PATHS[api], json=_burst_body(api, nonce))
                status = r.status_code
                if status != 200:
                    raise refusal(api, status, r.headers, r.text)
                text = _burst_text(api, r.json())
            if text != " ".join([nonce] * BURST_REPEAT):
                raise Wrong("burst answer", f"{api}: expected {nonce} x{BURST_REPEAT}, got {text[:120]!r}")
            rec.checked(answer=True)
        except Overload:
            pass  # a clean refusal: what a burst is for
        except Wrong as exc:
            rec.violation(exc.check, exc.detail)
        except Exception as exc:  # noqa: BLE001 - a dropped connection, a barrier that broke
            rec.violation("burst", f"{api}: {exc!r}")
        with lock:
            statuses[status] += 1
        rec.request("burst", status)

    threads = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(size)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(600)
    answered = rec.now()
    drained = wait_for(lambda: server.health()["queue_depth"] == 0, timeout=120, interval=0.05)
    if not drained:
        rec.violation("burst drain", f"burst {number}: the queue was not back to 0 within 120 s of its last answer")
    refused = sum(n for s, n in statuses.items() if s in (503, 529))
    return {"t": round(started, 1), "size": size, "statuses": {str(k): v for k, v in sorted(statuses.items())},
            "refused": refused, "answered_s": round(answered - started, 2), "drained_s": round(rec.now() - answered, 2),
            "window": [round(started, 2), round(rec.now() + 1, 2)]}


def swap(server: SoakServer, rec: Recorder) -> dict[str, Any]:
    """Load the third chat model (the least recently used of the others is evicted, its prompt cache written to
    disk), then unload it with keep_alive 0; each step checked in /health."""
    started = rec.now()
    with httpx.Client(base_url=server.url, timeout=TIMEOUT) as client:
        try:
            result = stream(client, "ollama", {"model": SWAP, "messages": [{"role": "user", "content": "hi"}],
                                               "options": {"num_predict": 8}})
            check_stream("ollama", result.raw)
            rec.checked(stream=True)
            rec.request("swap", 200)
            loaded = server.health()["loaded_models"]
            if SWAP not in loaded:
                raise Wrong("swap", f"{SWAP} answered but is not loaded: {loaded}")
            r = client.post("/api/generate", json={"model": SWAP, "keep_alive": 0})
            rec.request("swap", r.status_code)
            if r.status_code != 200 or r.json().get("done_reason") != "unload":
                raise Wrong("swap", f"unloading {SWAP}: {r.status_code} {r.text[:200]}")
            if not wait_for(lambda: SWAP not in server.health()["loaded_models"], timeout=60, interval=0.2):
                raise Wrong("swap", f"{SWAP} still loaded 60 s after keep_alive 0")
        except Wrong as exc:
            rec.violation(exc.check, exc.detail)
        except Exception as exc:  # noqa: BLE001
            rec.violation("swap", repr(exc))
    return {"t": round(started, 1), "seconds": round(rec.now() - started, 2), "loaded_after": server.health()["loaded_models"]}

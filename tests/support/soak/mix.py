"""The mix: worker threads, each drawing scenarios from its own seeded generator, against the one server.

Every answer is checked against its request: the echo script answers the request's nonce (REPEAT-N times for a
long answer), embeddings of a text must match its first embedding, an image's greedy answer its first answer.
A refusal (503/529 with Retry-After) is retried after it; a lost connection waits for the server to be back.
Whether either was expected (a burst, the crash) is judged at the end from the events recorded here.
"""

from __future__ import annotations

import base64
import json
import math
import random
import string
import threading
import time
from contextlib import contextmanager
from typing import Any, Callable, Iterator

import anthropic
import httpx
import openai

from tests.support.soak import malformed
from tests.support.soak.agents import CONVERSATIONS, MODEL
from tests.support.soak.calls import PATHS, TIMEOUT, Lost, Overload, Wrong, check_stream, expect, refusal, sdk, stream
from tests.support.soak.record import Recorder

VISION, EMBEDDING = "soak-vl", "soak-bert"
TEXTS = [f"Text {i}: the soak's sentence number {i} NONCE-e{i}" for i in range(32)]
IMAGE_SEEDS = 3
RETRIES = 30
APIS = {  # each scenario's APIs: the mix draws one, the warm-up takes each
    "side": ("chat", "chat-stream", "azure", "ollama", "anthropic", "responses-stream"),
    "disconnect": ("chat", "responses", "anthropic", "ollama"),
    "structured": ("chat", "responses"),
    "embeddings": ("embeddings", "ollama-embed"),
    "image": ("chat", "anthropic"),
    "malformed": ("chat", "anthropic", "responses", "embeddings", "ollama", "azure"),
}


class Shared:
    """What every worker compares with: the first embedding of each text, the first answer to each image."""

    def __init__(self):
        self.lock = threading.Lock()
        self.references: dict[Any, Any] = {}
        self.images = {seed: base64.b64encode(_noise_png(seed)).decode() for seed in range(IMAGE_SEEDS)}

    def first(self, key: Any, value: Any) -> Any:
        with self.lock:
            return self.references.setdefault(key, value)


class Session:
    """One worker's clients (closed whenever the mix pauses: no keep-alive connection outlives a quiet point)."""

    def __init__(self, url: str, rec: Recorder, rng: random.Random, shared: Shared, ready: threading.Event):
        self.url, self.rec, self.rng, self.shared, self.ready = url, rec, rng, shared, ready
        self.open()

    def open(self) -> None:
        self.http = httpx.Client(base_url=self.url, timeout=TIMEOUT)
        self.openai = openai.OpenAI(base_url=self.url + "/v1", api_key="soak", max_retries=0, http_client=self.http)
        # The Anthropic SDK brings its own HTTP client (httpx2): closed with ours.
        self.anthropic = anthropic.Anthropic(base_url=self.url, api_key="soak", max_retries=0, timeout=TIMEOUT.read)

    def close(self) -> None:
        self.http.close()
        self.anthropic.close()

    def nonce(self) -> str:
        return "NONCE-" + "".join(self.rng.choices(string.ascii_letters + string.digits, k=10))

    def attempt(self, scenario: str, api: str, call: Callable[[], Any]) -> Any:
        """``call()``, again after a refusal (after its Retry-After) or a lost connection (once the server is back)."""
        for _ in range(RETRIES):
            try:
                return call()
            except Overload as exc:
                self.rec.request(scenario, 529 if api == "anthropic" else 503)
                self.rec.event("overloaded", api, str(exc))
                time.sleep(min(5, int(exc.retry_after)))
            except Lost as exc:
                self.rec.request(scenario, 0)
                self.rec.event("transport", api, str(exc))
                self.ready.wait(600)
        raise Wrong("retries", f"{scenario} on {api}: still refused after {RETRIES} tries")


def side(s: Session, api: str | None = None) -> None:
    """A short request beside the conversations, on any chat API, its answer the nonce (repeated)."""
    nonce, repeat = s.nonce(), s.rng.choice((1, 1, 1, 8, 32))
    wanted = " ".join([nonce] * repeat)
    messages = [{"role": "user", "content": f"Say {nonce} REPEAT-{repeat}"}]
    api = api or s.rng.choice(APIS["side"])

    def ask() -> str:
        if api == "chat":
            with sdk(api):
                text = s.openai.chat.completions.create(model=MODEL, messages=messages).choices[0].message.content
            s.rec.request("side", 200)
            return text
        if api == "anthropic":
            with sdk(api):
                message = s.anthropic.messages.create(model=MODEL, max_tokens=512, messages=messages)
            s.rec.request("side", 200)
            return "".join(b.text for b in message.content if b.type == "text")
        if api == "azure":
            return _post(s, "side", api, {"messages": messages})["choices"][0]["message"]["content"]
        name = api.removesuffix("-stream")
        body = {"model": MODEL, "input": messages} if name == "responses" else {"model": MODEL, "messages": messages}
        result = stream(s.http, name, body)
        answer = check_stream(name, result.raw)
        s.rec.checked(stream=True)
        s.rec.request("side", 200, ttft=result.ttft, itls=result.itls)
        if name == "responses":
            s.rec.response_completed(answer["response"]["id"], {"text": answer["text"], "calls": []})
        return answer["text"]

    expect(f"{api} answer", s.attempt("side", api, ask), wanted)
    s.rec.checked(answer=True)


def disconnect(s: Session, api: str | None = None) -> None:
    """A long streamed answer the client hangs up on after a few tokens: its slot must be freed."""
    nonce, api = s.nonce(), api or s.rng.choice(APIS["disconnect"])
    messages = [{"role": "user", "content": f"Say {nonce} REPEAT-400"}]
    body = {
        "chat": {"model": MODEL, "messages": messages, "max_tokens": 2000},
        "responses": {"model": MODEL, "input": messages, "max_output_tokens": 2000},
        "anthropic": {"model": MODEL, "messages": messages, "max_tokens": 2000},
        "ollama": {"model": MODEL, "messages": messages, "options": {"num_predict": 2000}},
    }[api]

    def hang_up() -> None:
        stream(s.http, api, body, stop_after=s.rng.randint(1, 5))
        s.rec.request("disconnect", 200)

    s.attempt("disconnect", api, hang_up)


def structured(s: Session, api: str | None = None) -> None:
    """A JSON-schema answer: one field, holding the nonce."""
    nonce = s.nonce()
    schema = {"type": "object", "properties": {"nonce": {"type": "string"}}, "required": ["nonce"], "additionalProperties": False}
    content = f'Answer in JSON with a single "nonce" field: {nonce}'
    api = api or s.rng.choice(APIS["structured"])

    def ask() -> str:
        with sdk(api):
            if api == "chat":
                fmt = {"type": "json_schema", "json_schema": {"name": "nonce", "schema": schema, "strict": True}}
                text = s.openai.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": content}],
                                                       response_format=fmt).choices[0].message.content
            else:
                fmt = {"format": {"type": "json_schema", "name": "nonce", "schema": schema, "strict": True}}
                text = s.openai.responses.create(model=MODEL, input=content, text=fmt, store=False).output_text
        s.rec.request("structured", 200)
        return text

    text = s.attempt("structured", api, ask)
    try:
        got = json.loads(text)
    except ValueError:
        raise Wrong("structured", f"{api}: not JSON: {text!r}") from None
    expect(f"{api} structured answer", got, {"nonce": nonce})
    s.rec.checked(answer=True)


def embeddings(s: Session, api: str | None = None) -> None:
    """A batch of texts (OpenAI or Ollama); each text's vector must be its first one (cosine within 1e-3)."""
    texts = s.rng.sample(TEXTS, s.rng.randint(1, 8))
    api = api or s.rng.choice(APIS["embeddings"])

    def ask() -> list[list[float]]:
        if api == "embeddings":
            with sdk(api):
                data = s.openai.embeddings.create(model=EMBEDDING, input=texts).data
            s.rec.request("embeddings", 200)
            return [d.embedding for d in sorted(data, key=lambda d: d.index)]
        return _post(s, "embeddings", "ollama", {"model": EMBEDDING, "input": texts}, path="/api/embed")["embeddings"]

    vectors = s.attempt("embeddings", api, ask)
    expect("embeddings count", len(vectors), len(texts))
    for text, vector in zip(texts, vectors):
        reference = s.shared.first(("embedding", text), vector)
        if _cosine(vector, reference) < 0.999:
            raise Wrong("embedding", f"{api}: the vector of {text!r} is not the one it had before")
    s.rec.checked(answer=True)


def image(s: Session, api: str | None = None) -> None:
    """An image question to the vision model (OpenAI or Anthropic), greedy (the server's default temperature is 0):
    the same image, the same answer."""
    seed, api = s.rng.randrange(IMAGE_SEEDS), api or s.rng.choice(APIS["image"])
    data = s.shared.images[seed]

    def ask() -> str:
        with sdk(api):
            if api == "chat":
                parts = [{"type": "text", "text": "What is in the image?"},
                         {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{data}"}}]
                text = s.openai.chat.completions.create(model=VISION, messages=[{"role": "user", "content": parts}],
                                                       max_tokens=8).choices[0].message.content
            else:
                parts = [{"type": "text", "text": "What is in the image?"},
                         {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": data}}]
                message = s.anthropic.messages.create(model=VISION, messages=[{"role": "user", "content": parts}], max_tokens=8)
                text = "".join(b.text for b in message.content if b.type == "text")
        s.rec.request("image", 200)
        return text

    text = s.attempt("image", api, ask)
    expect(f"{api} image {seed} answer", text, s.shared.first(("image", api, seed), text))
    s.rec.checked(answer=True)


def bad(s: Session, api: str | None = None) -> None:
    """A malformed request: the API's 4xx in its own error shape, never a 5xx."""
    case = s.rng.choice([c for c in malformed.CASES if api in (None, c.api)])
    s.attempt("malformed", case.api, lambda: malformed.check(s.http, case, s.rec))


def _post(s: Session, scenario: str, api: str, body: dict[str, Any], path: str | None = None) -> dict[str, Any]:
    try:
        r = s.http.post(path or PATHS[api], json=body)
    except httpx.TransportError as exc:
        raise Lost(f"{api}: {exc!r}") from exc
    if r.status_code != 200:
        raise refusal(api, r.status_code, r.headers, r.text)
    s.rec.request(scenario, 200)
    return r.json()


def _cosine(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b))
    return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)) or 1.0)


def _noise_png(seed: int) -> bytes:
    from tests.support.vision_models import noise_png

    return noise_png(seed)


SCENARIOS: list[tuple[str, int]] = [
    ("chat-agent", 3), ("responses-agent", 3), ("anthropic-agent", 3), ("side", 3), ("disconnect", 1),
    ("structured", 1), ("embeddings", 2), ("image", 1), ("malformed", 1),
]
ONE_SHOT = {"side": side, "disconnect": disconnect, "structured": structured, "embeddings": embeddings,
            "image": image, "malformed": bad}


class Gate:
    """Lets the driver pause the mix between scenarios (a quiet point, the end) and wait until no worker is busy."""

    def __init__(self):
        self._cond = threading.Condition()
        self._paused = False
        self._busy = 0

    @contextmanager
    def scenario(self, session: Session) -> Iterator[None]:
        with self._cond:
            if self._paused:
                session.close()
                self._cond.wait_for(lambda: not self._paused)
                session.open()
            self._busy += 1
        try:
            yield
        finally:
            with self._cond:
                self._busy -= 1
                self._cond.notify_all()

    @contextmanager
    def paused(self, timeout: float) -> Iterator[bool]:
        """Yields whether every worker stopped within ``timeout``."""
        with self._cond:
            self._paused = True
            stopped = self._cond.wait_for(lambda: self._busy == 0, timeout)
        try:
            yield stopped
        finally:
            with self._cond:
                self._paused = False
                self._cond.notify_all()


class Worker(threading.Thread):
    def __init__(self, index: int, seed: int, url: str, rec: Recorder, shared: Shared, gate: Gate,
                 ready: threading.Event, done: threading.Event):
        super().__init__(name=f"soak-worker-{index}", daemon=True)
        self.rng = random.Random(seed * 1000 + index)  # its own draws: the same mix for a seed (retries aside)
        self.session = Session(url, rec, self.rng, shared, ready)
        self.rec, self.gate, self.done = rec, gate, done
        self.conversations = {cls.api: cls(self.session) for cls in CONVERSATIONS}

    def run(self) -> None:
        names, weights = zip(*SCENARIOS)
        while not self.done.is_set():
            name = self.rng.choices(names, weights)[0]
            with self.gate.scenario(self.session):
                if self.done.is_set():
                    break
                try:
                    if name.endswith("-agent"):
                        self.conversations[name.removesuffix("-agent")].turn()
                    else:
                        ONE_SHOT[name](self.session)
                except Wrong as exc:
                    self.rec.violation(exc.check, exc.detail)
                except Exception as exc:  # noqa: BLE001 - whatever else broke is a finding too
                    self.rec.violation("client error", f"{name}: {exc!r}")
        self.session.close()

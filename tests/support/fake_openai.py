"""A tiny streaming server for the client's protocols, built on http.server (not on mlxcli).

It answers every request with ``words`` chunks (one word each), reports usage (11 prompt tokens,
3 of them cached) or not, and fails the requests ``fail(n)`` picks (n counts requests from 1):
``"http"`` answers 500 before any output, ``"stream"`` sends two chunks, then the protocol's
error event. Every request's path and
body is kept in ``requests`` (and appended to ``log``, which several servers may share).
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable


class FakeServer:
    def __init__(
        self,
        *,
        words: int = 8,
        usage: bool = False,
        fail: Callable[[int], str | None] = lambda n: None,
        delay: float = 0.0,
        name: str = "fake",
        log: list | None = None,
    ):
        self.words, self.usage, self.fail, self.delay, self.name = words, usage, fail, delay, name
        self.requests: list[tuple[str, dict[str, Any]]] = []
        self.log = log if log is not None else []
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output quiet
                pass

            def do_GET(self):
                if self.path.rstrip("/") == "/v1/models":
                    self._json(200, {"object": "list", "data": [{"id": f"{server.name}-model", "object": "model"}]})
                else:
                    self._json(404, {"error": {"message": "not found"}})

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                with server._lock:
                    server.requests.append((self.path, body))
                    server.log.append(server.name)
                    n = len(server.requests)
                failure = server.fail(n)
                if failure == "http":
                    return self._json(500, {"error": {"message": f"request {n} failed", "type": "server_error"}})
                stream = {
                    "/v1/chat/completions": server._chat,
                    "/v1/responses": server._responses,
                    "/v1/messages": server._anthropic,
                    "/api/chat": server._ollama,
                }.get(self.path)
                if stream is None:
                    return self._json(404, {"error": {"message": "not found"}})
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.end_headers()
                for frame in stream(body, failing=failure == "stream", n=n):
                    self.wfile.write(frame.encode())
                    self.wfile.flush()

            def _json(self, status: int, payload: Any) -> None:
                raw = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.http.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.http.server_address[1]}"
        self._thread = threading.Thread(target=self.http.serve_forever, daemon=True)
        self._thread.start()

    def _pieces(self, failing: bool):
        for i in range(2 if failing else self.words):
            time.sleep(self.delay)
            yield f" w{i}"

    def _chat(self, body: dict, *, failing: bool, n: int):
        def chunk(delta, finish=None, **extra):
            return "data: " + json.dumps({"id": f"c{n}", "object": "chat.completion.chunk", "choices": [
                {"index": 0, "delta": delta, "finish_reason": finish}], **extra}) + "\n\n"

        yield chunk({"role": "assistant", "content": ""})
        for piece in self._pieces(failing):
            yield chunk({"content": piece})
        if failing:
            yield "data: " + json.dumps({"error": {"message": f"request {n} broke mid-stream"}}) + "\n\n"
            return
        yield chunk({}, "length")
        if self.usage and (body.get("stream_options") or {}).get("include_usage"):
            yield "data: " + json.dumps({"id": f"c{n}", "choices": [], "usage": {
                "prompt_tokens": 11, "completion_tokens": self.words, "total_tokens": 11 + self.words,
                "prompt_tokens_details": {"cached_tokens": 3}}}) + "\n\n"
        yield "data: [DONE]\n\n"

    def _responses(self, body: dict, *, failing: bool, n: int):
        seq = iter(range(1000))

        def event(kind, **payload):
            return f"event: {kind}\ndata: " + json.dumps({"type": kind, "sequence_number": next(seq), **payload}) + "\n\n"

        yield event("response.created", response={"id": f"resp_{n}", "status": "in_progress", "output": []})
        yield event("response.output_item.added", output_index=0, item={"id": "msg_1", "type": "message", "content": []})
        for piece in self._pieces(failing):
            yield event("response.output_text.delta", item_id="msg_1", output_index=0, content_index=0, delta=piece)
        if failing:
            yield event("response.failed", response={"status": "failed", "error": {"code": "server_error", "message": f"request {n} broke"}})
            return
        usage = {"input_tokens": 11, "input_tokens_details": {"cached_tokens": 3}, "output_tokens": self.words,
                 "total_tokens": 11 + self.words} if self.usage else None
        yield event("response.completed", response={"id": f"resp_{n}", "status": "completed", "usage": usage})

    def _anthropic(self, body: dict, *, failing: bool, n: int):
        def event(kind, **payload):
            return f"event: {kind}\ndata: " + json.dumps({"type": kind, **payload}) + "\n\n"

        # Anthropic counts cache reads apart: 8 + 3 = the 11 prompt tokens the other protocols report.
        usage = {"input_tokens": 8, "cache_read_input_tokens": 3, "output_tokens": 1} if self.usage else {}
        yield event("message_start", message={"id": f"msg_{n}", "content": [], "usage": usage})
        yield event("content_block_start", index=0, content_block={"type": "text", "text": ""})
        yield event("ping")
        for piece in self._pieces(failing):
            yield event("content_block_delta", index=0, delta={"type": "text_delta", "text": piece})
        if failing:
            yield event("error", error={"type": "overloaded_error", "message": "Overloaded"})
            return
        yield event("content_block_stop", index=0)
        yield event("message_delta", delta={"stop_reason": "max_tokens"}, usage={"output_tokens": self.words} if self.usage else {})
        yield event("message_stop")

    def _ollama(self, body: dict, *, failing: bool, n: int):
        def line(**fields):
            return json.dumps({"model": body.get("model"), "created_at": "2026-01-01T00:00:00Z", **fields}) + "\n"

        for piece in self._pieces(failing):
            yield line(message={"role": "assistant", "content": piece}, done=False)
        if failing:
            yield json.dumps({"error": f"request {n} broke mid-stream"}) + "\n"
            return
        usage = {"prompt_eval_count": 11, "eval_count": self.words} if self.usage else {}  # no cached count
        yield line(message={"role": "assistant", "content": ""}, done=True, done_reason="length", **usage)

    def close(self) -> None:
        self.http.shutdown()
        self.http.server_close()

    def __enter__(self) -> "FakeServer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

"""``POST /api/pull``: fetch a model with `mlxcli pull`'s resolver, its progress streamed as NDJSON.

A request names an alias, an installed model or a Hugging Face repo id, never a path (the server
resolves with ``allow_paths=False``). The pull runs on a thread of its own and reports Ollama's
progress objects (``status``, and ``digest``, ``total``, ``completed`` while a stage counts):
``digest`` names the stage, where Ollama names the layer. A client that leaves does not stop the
pull (nor does Ollama's): installs are atomic, and the next pull of that name finds it done.
The model it fetches is served once the server is started with it (``--model``).
"""

from __future__ import annotations

import logging
import queue
import threading
from typing import Any, Iterator

import falcon

from mlxcli.core.errors import MlxcliError
from mlxcli.server.context import ServerContext
from mlxcli.server.framing import NDJSON, ndjson_line
from mlxcli.server.http import send_json
from mlxcli.server.providers.ollama.request import model_names, read_body
from mlxcli.server.validate import Obj

log = logging.getLogger("mlxcli.server")

STATUSES = {  # mlxcli.models' stages, as Ollama-like statuses
    "download": "pulling", "files": "pulling files", "verify": "verifying sha256 digest", "hash": "hashing",
    "extract": "extracting", "read": "reading GGUF header", "convert": "converting tensors", "write": "writing model",
    "check": "checking that it loads",
}
DONE = object()  # the end of a pull's progress


class PullJob:
    """One pull on its own thread; ``progress()`` yields Ollama's progress objects, then a final
    ``success``, or raises the pull's error."""

    def __init__(self, name: str):
        self.name = name
        self._events: queue.SimpleQueue = queue.SimpleQueue()
        self._shown: dict[str, int] = {}  # stage → the last percentage reported
        threading.Thread(target=self._run, name=f"pull-{name}", daemon=True).start()

    def _run(self) -> None:
        from mlxcli.models import resolve_model

        self._events.put({"status": "pulling manifest"})
        try:
            resolve_model(self.name, progress=self._report, allow_paths=False)
            self._events.put({"status": "success"})
        except MlxcliError as exc:
            self._events.put(exc)
        except Exception as exc:  # a bug or a library failure: reported, never a traceback on the wire
            log.exception("pulling %s failed", self.name)
            self._events.put(MlxcliError(f"pulling {self.name} failed: {type(exc).__name__}: {exc}"))
        self._events.put(DONE)

    def _report(self, stage: str, done: int, total: int | None) -> None:
        """Each stage's progress at most once per percent (a download reports every chunk)."""
        percent = done * 100 // total if total else done
        if self._shown.get(stage) == percent:
            return
        self._shown[stage] = percent
        event: dict[str, Any] = {"status": STATUSES.get(stage, stage), "digest": stage, "completed": done}
        if total is not None:
            event["total"] = total
        self._events.put(event)

    def progress(self) -> Iterator[dict[str, Any]]:
        while (event := self._events.get()) is not DONE:
            if isinstance(event, MlxcliError):
                raise event
            yield event


class Pull:
    def __init__(self, ctx: ServerContext):
        self.ctx = ctx

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        from mlxcli.models import validate_model_name

        o = Obj(read_body(req, self.ctx.settings.max_body_bytes))
        _, name = model_names(o, "model" if o.has("model") or not o.has("name") else "name")
        name = validate_model_name(name, allow_paths=False)
        o.bool("insecure")  # there is no registry to reach insecurely
        stream = o.bool("stream", default=True)
        job = PullJob(name)
        if not stream:
            last: dict[str, Any] = {}
            for last in job.progress():  # noqa: B007 (runs the pull: its last progress object is the answer)
                pass
            send_json(resp, last)
            return
        resp.content_type = NDJSON.media_type
        for header, value in NDJSON.headers:
            resp.set_header(header, value)
        resp.stream = _lines(job)


def _lines(job: PullJob) -> Iterator[bytes]:
    try:
        for event in job.progress():
            yield ndjson_line(event)
    except MlxcliError as exc:
        yield ndjson_line({"error": exc.message})

"""The engine: the only owner of the models.

One worker thread loads, evicts and unloads models and runs every generation (MLX
state is bound to the thread that created its streams). Callers pick the model by
the request's ``model`` (see ``registry.ModelRegistry.resolve``), render and check
their prompt on their own thread with that model's tokenizer (known before its
weights load), put a job on a bounded queue, and read that job's events. A caller
that stops reading cancels its job.

Jobs start in arrival order. Jobs for the model in memory run together in one
continuous batch (batch.py), up to ``max_batch`` at once; a job for another model
waits until that batch has finished, then swaps, so the queue stays bounded
meanwhile. A job that cannot share a batch (under KV-cache quantization, or for
a model whose caches cannot merge) runs alone (solo.py), through the same steps,
output and prompt cache. A load job (``load``) takes its turn the same way, but
only loads its model. Which models stay in memory is the registry's business
(registry.py). ``MlxEngine`` implements ``mlxcli.core.engine.Engine``.

What a model does is its kind's business (kinds.py): a kind that chats renders its prompts and makes
the runner of its jobs; a kind that answers once (embeddings) prepares its jobs and steps them in a
``Worker``. Those jobs have a queue of their own (sharing the wake-up of the chat queue): they start
as soon as they arrive, whatever chat request waits, and each pass of the loop works one unit of them
(an embeddings batch) beside one decode step (worker.py).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from typing import Any, Sequence

import mlx.core as mx

from mlxcli.core.embeddings import EmbeddingRequest
from mlxcli.core.engine import ModelKind, ModelStatus
from mlxcli.core.errors import EngineFailure, InvalidRequest
from mlxcli.core.events import Finish, Timings
from mlxcli.core.request import ChatRequest, Sampling
from mlxcli.engine import constraints, prompt, sampling
from mlxcli.engine.group import collective_failed
from mlxcli.engine.job import Generation, Job, WorkHandle, WorkJob
from mlxcli.engine.kinds import for_task, kind_of, served_model
from mlxcli.engine.overflow import ContextPolicy
from mlxcli.engine.peers import Peers
from mlxcli.engine.prompt_cache import PromptCache
from mlxcli.engine.queue import BoundedQueue
from mlxcli.engine.registry import ModelRegistry
from mlxcli.engine.runner import Runner
from mlxcli.engine.schedule import StepStats
from mlxcli.engine.served import ServedModel
from mlxcli.engine.settings import EngineSettings
from mlxcli.engine.vision.encoder import Encoder
from mlxcli.engine.worker import Worker

log = logging.getLogger("mlxcli.engine")

# How long the worker waits for another arrival after admitting a job, before it steps: the prompts of
# clients that send together are then read together, in one forward pass.
GATHER_SECONDS = 0.02
# How long stop() waits for the worker, which writes the prompt cache to its disk tier as it leaves.
PERSIST_SECONDS = 120


class MlxEngine:
    """Serves ``models`` (the first is the default); see ``kinds.served_model`` to build them."""

    def __init__(self, models: Sequence[ServedModel], settings: EngineSettings | None = None):
        self.settings = settings or EngineSettings()
        self.registry = ModelRegistry.from_settings(models, self.settings)
        self._queue: BoundedQueue[Job] = BoundedQueue(self.settings.max_queue)
        self._work_queue: BoundedQueue[WorkJob] = BoundedQueue(self.settings.max_queue, wakes=self._queue)
        self._workers: dict[str, Worker] = {}  # by kind, made as their first job arrives
        self._runner: Runner | None = None  # the jobs generating now, all for one model (Batch or Solo)
        self._waiting: Job | None = None  # taken from the queue, not started yet: keeps arrival order
        self.prompt_cache = PromptCache.from_settings(self.settings)
        self.steps = StepStats()  # each runner step's time and the prompt tokens it read, for /metrics
        # A chat model's KV goes with it (to the disk tier, if any); an embedding model has none.
        self.registry.on_unload = lambda model: self.prompt_cache.clear() if model.task == "chat" else None
        self.context = ContextPolicy(
            lambda model, request: self._render(model, request, boundaries=True),
            self.submit,
            self.settings.context_overflow,
            self.settings.context_keep_turns,
        )
        self._stopping = threading.Event()
        self._ready = threading.Event()
        self._failure: BaseException | None = None
        # HF fast tokenizers are not safe to call from several threads at once.
        self._render_lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="mlxcli-engine", daemon=True)
        # Sharded over mx.distributed: every pass of the loop starts with rank 0's decisions.
        self.peers = Peers(self.registry, self.settings.distributed) if self.settings.distributed else None

    @classmethod
    def from_path(cls, name: str, path, settings: EngineSettings | None = None) -> "MlxEngine":
        settings = settings or EngineSettings()
        return cls([served_model(name, path, settings)], settings)

    # ---- lifecycle -------------------------------------------------------

    def start(self) -> "MlxEngine":
        """Start the worker and wait until the default model is loaded (raises if it fails)."""
        self._thread.start()
        self._ready.wait()
        if self._failure is not None:
            raise self._failure
        return self

    def stop(self, grace: float = 10.0) -> None:
        """Refuse new work, let in-flight work finish for ``grace`` seconds, then cancel it."""
        self._stopping.set()
        self._queue.wake()  # an idle worker sees it now, not at the end of its wait
        deadline = time.monotonic() + grace
        while (self._running() or self._waiting or len(self._queue) or len(self._work_queue)) and time.monotonic() < deadline:
            time.sleep(0.05)
        for job in self._take_pending():
            job.emit(EngineFailure("the server is shutting down"))
        for job in self._running():  # their readers get an error, not an answer that merely looks finished
            job.emit(EngineFailure("the server is shutting down"))
            self.cancel(job)
        self._thread.join(timeout=PERSIST_SECONDS)

    def wait(self) -> None:
        """Block until the worker ends (a follower rank of a distributed engine serves nothing else)."""
        self._thread.join()

    def _take_pending(self) -> list[Job | WorkJob]:
        """Remove and return every job not started yet."""
        waiting, self._waiting = self._waiting, None
        return ([waiting] if waiting is not None else []) + self._queue.drain() + self._work_queue.drain()

    def _running(self) -> list[Job | WorkJob]:
        """The jobs generating or working now (read from any thread: a snapshot)."""
        runner = self._runner
        return (runner.jobs if runner is not None else []) + [job for w in list(self._workers.values()) for job in w.jobs]

    @property
    def alive(self) -> bool:
        return self._thread.is_alive() and self._failure is None

    @property
    def default_model(self) -> str:
        return self.registry.default.name

    @property
    def capacity(self) -> int:
        return self.settings.capacity

    def models(self) -> list[ModelStatus]:
        """Every configured model and whether it is loaded, in configuration order."""
        return self.registry.snapshot()

    def reset_peak_memory(self) -> None:
        """Start a new peak for ``Timings.peak_memory_gb`` (benchmarks call it between runs)."""
        mx.reset_peak_memory()

    def stats(self) -> dict[str, Any]:
        states = self.registry.snapshot()
        ranks = {"distributed": self.peers.status.json()} if self.peers is not None else {}
        # a batched vision model's kept image features (another kind's model may have an ``encoder`` too: Whisper)
        encoders = {m.name: e.snapshot() for m in self.registry.models if isinstance(e := getattr(m.loaded and m.loaded.model, "encoder", None), Encoder)}
        return ranks | ({"image_features": encoders} if encoders else {}) | {
            "queue_depth": len(self._queue) + (self._waiting is not None) + len(self._work_queue),
            "active_requests": len(self._running()),
            "prompt_cache": self.prompt_cache.stats(),
            "steps": self.steps.snapshot(),
            # counters of the models that speculate (or did): read at scrape time, as the steps are
            "speculation": {m.name: m.speculation.snapshot() for m in self.registry.models if m.speculation.mode},
            "loaded_models": [m.name for m in states if m.state == "loaded"],
            "loading_models": [m.name for m in states if m.state == "loading"],
        }

    # ---- requests --------------------------------------------------------

    def lookup(self, name: str) -> str | None:
        model = self.registry.lookup(name)
        return model.name if model is not None else None

    def resolve(self, requested: str | None, kind: ModelKind = "chat") -> str:
        return self.registry.resolve(requested, kind).name

    def count_tokens(self, request: ChatRequest) -> int:
        return len(self.render(request).tokens)

    def render(self, request: ChatRequest) -> prompt.RenderedPrompt:
        return self._render(self.registry.resolve(request.model), request)

    def _render(self, model: ServedModel, request: ChatRequest, *, boundaries: bool = False) -> prompt.RenderedPrompt:
        kind = kind_of(model)
        with self._render_lock:
            return kind.render(model, request, boundaries)

    def submit(self, request: ChatRequest) -> Generation:
        """Check and enqueue a request for the model it names.

        Raises ModelNotFound, InvalidRequest, ContextLengthExceeded or Overloaded.
        """
        if not self.alive or self._stopping.is_set():
            raise EngineFailure("the engine is not running")
        model = self.registry.resolve(request.model)
        window = model.context_window
        if request.context_window is not None:
            if request.context_window > window:
                raise InvalidRequest(f"A context window of {request.context_window} tokens was asked for; "
                                     f"the model's is {window} tokens.", param="context_window")
            window = request.context_window
        settings = sampling.resolve(request.sampling, model.sampling, self.settings.sampling())
        rendered = self._render(model, request, boundaries=True)
        rendered, compaction = self.context.fit(model, request, rendered, settings.max_tokens, window)  # or ContextLengthExceeded
        room = window - len(rendered.tokens)
        constraint = constraints.compile(request, rendered.plan, model.tokenizer, model.stop_tokens)
        job = Job(request, model, settings, rendered, min(settings.max_tokens, room), constraint, compaction)
        self._queue.put(job)
        return Generation(job, lambda: self.alive, self.cancel)

    def load(self, model: str | None, keep_alive: float | None = None) -> Generation:
        """Load ``model`` in turn and set its keep-alive (0: unload it once idle instead); one Finish event."""
        if not self.alive or self._stopping.is_set():
            raise EngineFailure("the engine is not running")
        served = self.registry.resolve(model)
        request = ChatRequest(messages=[], model=served.name, keep_alive=keep_alive)
        job = Job(request, served, Sampling(), prompt.RenderedPrompt("", []), max_tokens=0, load_only=True)
        self._queue.put(job)
        return Generation(job, lambda: self.alive, self.cancel)

    def cancel(self, job: Job | WorkJob) -> None:
        self.peers.cancel(job) if self.peers is not None and isinstance(job, Job) else job.cancelled.set()
        self._queue.remove(job) if isinstance(job, Job) else self._work_queue.remove(job)  # the worker drops it elsewhere

    def embed(self, request: EmbeddingRequest) -> WorkHandle:
        """Check, tokenize and enqueue an embeddings request (see ``mlxcli.core.engine.Engine.embed``)."""
        return self.work("embedding", request)

    def work(self, task: ModelKind, request: Any) -> WorkHandle:
        """Check and enqueue a request of a kind that answers once (``task``: embedding, ...) for the model
        it names; its handle's ``result()`` is the answer."""
        if not self.alive or self._stopping.is_set():
            raise EngineFailure("the engine is not running")
        model = self.registry.resolve(request.model, task)
        if model.task != task:
            raise InvalidRequest(for_task(task).refusal(model), param="model")
        kind = kind_of(model)
        # Tokenizers are not safe to call from several threads at once (a kind with its own says so).
        with self._render_lock if kind.locked_prepare else contextlib.nullcontext():
            job = kind.prepare(model, request)
        self._work_queue.put(job)
        return kind.handle(job, lambda: self.alive, self.cancel)

    # ---- the worker thread -----------------------------------------------

    def _run(self) -> None:
        try:
            self._stream = mx.default_stream(mx.default_device())
            self.registry.ensure_loaded(self.registry.default)
        except BaseException as exc:  # report any load failure to start()
            self._failure = exc
            self._ready.set()
            return
        self._ready.set()
        try:
            self._serve()
            self.prompt_cache.clear()  # to the disk tier, if there is one: the next start is warm
        except BaseException as exc:
            if self.peers is not None and collective_failed(exc):
                exc = self.peers.broken(exc)  # in a step: a rank is gone
            log.critical("the engine thread died: %r", exc)
            failure = exc if isinstance(exc, EngineFailure) else EngineFailure("the engine thread died")
            for job in self._take_pending() + self._running():  # first: their readers see why, not "stopped"
                job.emit(failure)
            self._failure = exc
            if self.peers is not None and self.peers.status.lost:  # only now: shutting down fails jobs too
                self.peers.on_lost()
            raise

    def _serve(self) -> None:
        """Admit jobs into the batch between its steps; start a new batch (or a solo job) when it is empty;
        embed one batch of the embedding requests beside each step."""
        admitted = False  # the last pass admitted a job: a burst's next request may be a few ms behind it
        while True:
            while (work := self._work_queue.get_nowait()) is not None:
                self._worker(work.model).add(work)
            busy = self._runner is not None or any(map(len, self._workers.values()))
            wait = GATHER_SECONDS if admitted else (0 if busy else 0.1)
            if self.peers is not None:
                self._waiting = self.peers.exchange(self._waiting, lambda: self._take(wait), self._quitting)
            elif self._waiting is None:
                self._waiting = self._take(wait)
            job = self._waiting
            if job is not None and job.cancelled.is_set():  # its reader left while it waited
                self._waiting = None
                continue
            admitted = job is not None and (self._runner is None or self._can_join(job))
            if admitted:
                self._waiting = None
                self.registry.set_keep_alive(job.model, job.request.keep_alive)
                if job.load_only:
                    self._load(job)
                elif self._runner is None:
                    self._start(job)
                else:
                    self._join(job)
                continue
            if self._runner is not None:
                started = time.perf_counter()
                read = self._runner.step()
                self.steps.observe(time.perf_counter() - started, read)
                if not len(self._runner):
                    self._close_runner()
            working = [w for w in self._workers.values() if len(w)]
            for worker in working:
                worker.step()
            if not working and self._runner is None:
                self.registry.unload_idle()
                if self.peers.quitting if self.peers is not None else self._quitting():
                    return

    def _take(self, wait: float) -> Job | None:
        return self._queue.get(timeout=wait) if wait else self._queue.get_nowait()

    def _quitting(self) -> bool:
        return self._stopping.is_set() and not len(self._queue) and not len(self._work_queue)

    def _worker(self, model: ServedModel) -> Worker:
        if model.kind not in self._workers:
            self._workers[model.kind] = kind_of(model).worker(self.registry)
        return self._workers[model.kind]

    def _can_join(self, job: Job) -> bool:
        runner = self._runner
        return runner is not None and job.model is runner.served and (job.load_only or runner.has_room())

    def _load(self, job: Job) -> None:
        """A load job: its model in memory, or with a keep-alive of 0 out of it, now when no runner
        uses it (a runner's model is loaded, and unloaded once the runner is done)."""
        try:
            if self._runner is None and job.request.keep_alive == 0:
                self.registry.unload_idle()
            elif self._runner is None:
                self.registry.unload_idle(keep=job.model)
                self.registry.acquire(job.model)  # loads it; acquire and release restart its idle time
                self.registry.release(job.model)
        except Exception as exc:
            log.error("cannot load %s: %s", job.model.name, exc)
            job.emit(EngineFailure(f"the model {job.model.name!r} could not be loaded; see the server log"))
            return
        job.emit(Finish("stop", timings=Timings(queued=time.perf_counter() - job.submitted)))

    def _start(self, job: Job) -> None:
        """Load the job's model, then open a batch with it, or a solo runner when it cannot batch."""
        self.registry.unload_idle(keep=job.model)
        try:
            loaded = self.registry.acquire(job.model)
        except Exception as exc:  # a model that fails to load fails its requests, not the engine
            log.error("cannot load %s for %s: %s", job.model.name, job.request.request_id, exc)
            job.emit(EngineFailure(f"the model {job.model.name!r} could not be loaded; see the server log"))
            return
        self._runner = kind_of(job.model).runner(job.model, loaded, self.settings, self.prompt_cache, self._stream)
        self._join(job)
        if not len(self._runner):
            self._close_runner()

    def _join(self, job: Job) -> None:
        try:
            self._runner.join(job)
        except Exception as exc:  # one request's failure must not stop the engine
            log.exception("cannot start %s", job.request.request_id)
            job.emit(EngineFailure(f"generation failed: {type(exc).__name__}: {exc}"))

    def _close_runner(self) -> None:
        runner, self._runner = self._runner, None
        runner.close()
        self.registry.release(runner.served)

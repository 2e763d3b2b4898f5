"""The engine: the only owner of the model.

One worker thread loads the model and runs every generation (MLX state is bound
to the thread that created its streams). Callers render and check their prompt
on their own thread, put a job on a bounded queue, and read that job's events.
A caller that stops reading cancels its job.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Iterator

import mlx.core as mx
from mlx_lm.generate import stream_generate
from mlx_lm.sample_utils import make_logits_processors, make_sampler

from mlxcli.core.errors import ContextLengthExceeded, EngineFailure, MlxcliError
from mlxcli.core.events import Event, Finish, Timings, Usage
from mlxcli.core.request import ChatRequest
from mlxcli.engine import loading, prompt
from mlxcli.engine.output import OutputProcessor
from mlxcli.engine.queue import BoundedQueue
from mlxcli.engine.settings import EngineSettings

log = logging.getLogger("mlxcli.engine")


@dataclass
class Job:
    request: ChatRequest
    prompt: prompt.RenderedPrompt
    max_tokens: int
    submitted: float = field(default_factory=time.perf_counter)
    events: queue.SimpleQueue = field(default_factory=queue.SimpleQueue)
    cancelled: threading.Event = field(default_factory=threading.Event)
    generated_tokens: int = 0  # read by tests and /health while it runs

    def emit(self, item: Event | MlxcliError) -> None:
        self.events.put(item)


class _Cancelled(Exception):
    """Raised inside prefill to abandon a job whose consumer left."""


class Generation:
    """The caller's handle on one job: iterate for events; ``cancel()`` to stop it."""

    def __init__(self, engine: "Engine", job: Job):
        self._engine = engine
        self.job = job
        self.prompt_tokens = len(job.prompt.tokens)
        self._done = False

    def next_event(self, timeout: float | None = None) -> Event | None:
        """The next event, or None if none arrived within ``timeout`` (for keep-alives)."""
        if self._done:
            raise StopIteration
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            wait = 0.5 if deadline is None else max(0.0, min(0.5, deadline - time.monotonic()))
            try:
                item = self.job.events.get(timeout=wait)
            except queue.Empty:
                if not self._engine.alive:
                    self._done = True
                    raise EngineFailure("the engine stopped while this request was running") from None
                if deadline is not None and time.monotonic() >= deadline:
                    return None
                continue
            if isinstance(item, MlxcliError):
                self._done = True
                raise item
            if isinstance(item, Finish):
                self._done = True
            return item

    def __iter__(self) -> Iterator[Event]:
        return self

    def __next__(self) -> Event:
        event = self.next_event()
        assert event is not None
        return event

    def cancel(self) -> None:
        if not self._done:
            self._done = True
            self._engine.cancel(self.job)

    close = cancel


class Engine:
    """``load`` runs on the worker thread and returns the model it will own."""

    def __init__(self, name: str, load: Callable[[], loading.LoadedModel], settings: EngineSettings | None = None):
        self.name = name
        self._load = load
        self.settings = settings or EngineSettings()
        self.model: loading.LoadedModel | None = None
        self._queue: BoundedQueue[Job] = BoundedQueue(self.settings.max_queue)
        self._active: Job | None = None
        self._stopping = threading.Event()
        self._ready = threading.Event()
        self._failure: BaseException | None = None
        # HF fast tokenizers are not safe to call from several threads at once.
        self._render_lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="mlxcli-engine", daemon=True)

    # ---- lifecycle -------------------------------------------------------

    def start(self) -> "Engine":
        """Start the worker and wait until the model is loaded (raises if it fails)."""
        self._thread.start()
        self._ready.wait()
        if self._failure is not None:
            raise self._failure
        return self

    def stop(self, grace: float = 10.0) -> None:
        """Refuse new work, let in-flight work finish for ``grace`` seconds, then cancel it."""
        self._stopping.set()
        deadline = time.monotonic() + grace
        while (self._active is not None or len(self._queue)) and time.monotonic() < deadline:
            time.sleep(0.05)
        for job in self._queue.drain():
            job.emit(EngineFailure("the server is shutting down"))
        active = self._active
        if active is not None:  # its reader gets an error, not an answer that merely looks finished
            active.emit(EngineFailure("the server is shutting down"))
            active.cancelled.set()
        self._thread.join(timeout=5)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive() and self._failure is None

    @property
    def context_window(self) -> int:
        assert self.model is not None
        return self.model.context_window

    @property
    def tokenizer(self):
        assert self.model is not None
        return self.model.tokenizer

    @classmethod
    def from_path(cls, name: str, path, settings: EngineSettings | None = None) -> "Engine":
        settings = settings or EngineSettings()
        return cls(name, lambda: loading.load(name, path, context_length=settings.context_length), settings)

    def stats(self) -> dict:
        return {"queue_depth": len(self._queue), "active_requests": int(self._active is not None)}

    # ---- requests --------------------------------------------------------

    def render(self, request: ChatRequest) -> prompt.RenderedPrompt:
        with self._render_lock:
            return prompt.render(self.tokenizer, request)

    def submit(self, request: ChatRequest) -> Generation:
        """Check and enqueue a request; raises InvalidRequest, ContextLengthExceeded or Overloaded."""
        if not self.alive or self._stopping.is_set():
            raise EngineFailure("the engine is not running")
        rendered = self.render(request)
        n_prompt = len(rendered.tokens)
        room = self.context_window - n_prompt
        if room <= 0:
            raise ContextLengthExceeded(n_prompt, self.context_window)
        wanted = request.sampling.max_tokens or self.settings.max_tokens
        job = Job(request=request, prompt=rendered, max_tokens=min(wanted, room))
        self._queue.put(job)
        return Generation(self, job)

    def cancel(self, job: Job) -> None:
        job.cancelled.set()
        self._queue.remove(job)

    # ---- the worker thread -----------------------------------------------

    def _run(self) -> None:
        try:
            self._stream = mx.default_stream(mx.default_device())
            self.model = self._load()
        except BaseException as exc:  # report any load failure to start()
            self._failure = exc
            self._ready.set()
            return
        self._ready.set()
        try:
            while not self._stopping.is_set() or len(self._queue):
                job = self._queue.get(timeout=0.1)
                if job is None or job.cancelled.is_set():
                    continue
                self._active = job
                try:
                    self._generate(job)
                except _Cancelled:
                    job.emit(Finish("cancelled", self._usage(job)))
                except Exception as exc:  # one request's failure must not stop the engine
                    log.exception("generation failed for %s", job.request.request_id)
                    job.emit(EngineFailure(f"generation failed: {type(exc).__name__}: {exc}"))
                finally:
                    self._active = None
        except BaseException as exc:
            self._failure = exc
            log.critical("the engine thread died: %r", exc)
            for job in self._queue.drain():
                job.emit(EngineFailure("the engine thread died"))
            raise

    def _top_k(self, top_k: int | None) -> int:
        """0 (off) when ``top_k`` keeps every token anyway: mlx-lm refuses k >= the vocabulary size."""
        assert self.model is not None
        vocab = self.model.config.get("vocab_size") or len(self.model.tokenizer)
        return top_k if top_k and top_k < vocab else 0

    def _usage(self, job: Job) -> Usage:
        return Usage(prompt_tokens=len(job.prompt.tokens), completion_tokens=job.generated_tokens)

    def _generate(self, job: Job) -> None:
        assert self.model is not None
        sampling = job.request.sampling
        s = self.settings
        temperature = s.temperature if sampling.temperature is None else sampling.temperature
        top_p = s.top_p if sampling.top_p is None else sampling.top_p
        sampler = make_sampler(
            temp=temperature,
            top_p=top_p if 0 < top_p < 1 else 0.0,
            min_p=sampling.min_p or 0.0,
            top_k=self._top_k(sampling.top_k),
        )
        processors = make_logits_processors(
            repetition_penalty=sampling.repetition_penalty,
            presence_penalty=sampling.presence_penalty,
            frequency_penalty=sampling.frequency_penalty,
        )
        if sampling.seed is not None:
            mx.random.seed(sampling.seed)

        def check_cancelled(_done: int, _total: int) -> None:
            if job.cancelled.is_set():
                raise _Cancelled

        output = OutputProcessor(sampling.stop)
        eos = self.model.tokenizer.eos_token_ids
        started = time.perf_counter()
        first_token_at = None
        reason, stop_sequence = "length", None
        steps = stream_generate(
            self.model.model,
            self.model.tokenizer,
            mx.array(job.prompt.tokens),
            max_tokens=job.max_tokens,
            sampler=sampler,
            logits_processors=processors,
            prefill_step_size=s.prefill_step_size,
            prompt_progress_callback=check_cancelled,
            stream=self._stream,
        )
        try:
            for step in steps:
                if first_token_at is None:
                    first_token_at = time.perf_counter()
                if step.finish_reason == "stop" and step.token in eos:
                    job.generated_tokens = step.generation_tokens - 1  # the EOS is not output
                else:
                    job.generated_tokens = step.generation_tokens
                if job.cancelled.is_set():
                    reason = "cancelled"
                    break
                events, stop_sequence = output.feed(step.text)
                for event in events:
                    job.emit(event)
                if stop_sequence is not None:
                    reason = "stop"
                    break
                if step.finish_reason is not None:
                    reason = step.finish_reason
                    for event in output.finish():
                        job.emit(event)
                    break
        finally:
            steps.close()
        ended = time.perf_counter()
        first_token_at = first_token_at or ended
        timings = Timings(
            queued=started - job.submitted,
            prefill=first_token_at - started,
            decode=ended - first_token_at,
            peak_memory_gb=mx.get_peak_memory() / 1e9,
        )
        job.emit(Finish(reason, self._usage(job), timings, stop_sequence))

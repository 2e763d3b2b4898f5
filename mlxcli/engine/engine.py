"""The engine: the only owner of the models.

One worker thread loads, evicts and unloads models and runs every generation (MLX
state is bound to the thread that created its streams). Callers pick the model by
the request's ``model`` (see ``registry.ModelRegistry.resolve``), render and check
their prompt on their own thread with that model's tokenizer (known before its
weights load), put a job on a bounded queue, and read that job's events. A caller
that stops reading cancels its job.

Jobs run in arrival order. A job for a model that is not in memory loads it when its
turn comes, so a request for model B waits for the generation running on model A
and swaps only once A is done; the queue stays bounded meanwhile. Which models stay
in memory is the registry's business (registry.py); this module only runs jobs.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass, field, fields, replace
from typing import Iterator, Sequence

import mlx.core as mx
from mlx_lm.generate import stream_generate
from mlx_lm.sample_utils import make_logits_processors, make_sampler

from mlxcli.core.errors import ContextLengthExceeded, EngineFailure, MlxcliError
from mlxcli.core.events import Event, Finish, Timings, Usage
from mlxcli.core.request import ChatRequest, Sampling
from mlxcli.engine import loading, prompt
from mlxcli.engine.output import OutputProcessor
from mlxcli.engine.queue import BoundedQueue
from mlxcli.engine.registry import ModelRegistry, ModelStatus, ServedModel, served_model
from mlxcli.engine.settings import EngineSettings

log = logging.getLogger("mlxcli.engine")


@dataclass
class Job:
    request: ChatRequest
    model: ServedModel
    sampling: Sampling  # the request's, with the model's defaults filled in
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
    """Serves ``models`` (the first is the default); see ``registry.served_model`` to build them."""

    def __init__(self, models: Sequence[ServedModel], settings: EngineSettings | None = None):
        self.settings = settings or EngineSettings()
        self.registry = ModelRegistry.from_settings(models, self.settings)
        self._queue: BoundedQueue[Job] = BoundedQueue(self.settings.max_queue)
        self._active: Job | None = None
        self._stopping = threading.Event()
        self._ready = threading.Event()
        self._failure: BaseException | None = None
        # HF fast tokenizers are not safe to call from several threads at once.
        self._render_lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="mlxcli-engine", daemon=True)

    @classmethod
    def from_path(cls, name: str, path, settings: EngineSettings | None = None) -> "Engine":
        settings = settings or EngineSettings()
        return cls([served_model(name, path, settings)], settings)

    # ---- lifecycle -------------------------------------------------------

    def start(self) -> "Engine":
        """Start the worker and wait until the default model is loaded (raises if it fails)."""
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

    # The default model's name, tokenizer and window (the only ones with a single model).
    @property
    def name(self) -> str:
        return self.registry.default.name

    @property
    def tokenizer(self):
        return self.registry.default.tokenizer

    @property
    def context_window(self) -> int:
        return self.registry.default.context_window

    def models(self) -> list[ModelStatus]:
        """Every configured model and whether it is loaded, in configuration order."""
        return self.registry.snapshot()

    def reset_peak_memory(self) -> None:
        """Start a new peak for ``Timings.peak_memory_gb`` (benchmarks call it between runs)."""
        mx.reset_peak_memory()

    def stats(self) -> dict:
        states = self.registry.snapshot()
        return {
            "queue_depth": len(self._queue),
            "active_requests": int(self._active is not None),
            "loaded_models": [m.name for m in states if m.state == "loaded"],
            "loading_models": [m.name for m in states if m.state == "loading"],
        }

    # ---- requests --------------------------------------------------------

    def resolve(self, requested: str | None) -> ServedModel:
        """The model a requested name selects (served name, alias or id), or ModelNotFound."""
        return self.registry.resolve(requested)

    def render(self, request: ChatRequest) -> prompt.RenderedPrompt:
        return self._render(self.resolve(request.model), request)

    def _render(self, model: ServedModel, request: ChatRequest) -> prompt.RenderedPrompt:
        with self._render_lock:
            return prompt.render(model.tokenizer, request, model.format)

    def submit(self, request: ChatRequest) -> Generation:
        """Check and enqueue a request for the model it names.

        Raises ModelNotFound, InvalidRequest, ContextLengthExceeded or Overloaded.
        """
        if not self.alive or self._stopping.is_set():
            raise EngineFailure("the engine is not running")
        model = self.resolve(request.model)
        rendered = self._render(model, request)
        n_prompt = len(rendered.tokens)
        room = model.context_window - n_prompt
        if room <= 0:
            raise ContextLengthExceeded(n_prompt, model.context_window)
        sampling = _with_defaults(request.sampling, model.sampling)
        wanted = sampling.max_tokens or self.settings.max_tokens
        job = Job(request=request, model=model, sampling=sampling, prompt=rendered, max_tokens=min(wanted, room))
        self._queue.put(job)
        return Generation(self, job)

    def cancel(self, job: Job) -> None:
        job.cancelled.set()
        self._queue.remove(job)

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
            while not self._stopping.is_set() or len(self._queue):
                job = self._queue.get(timeout=0.1)
                self.registry.unload_idle(keep=job.model if job else None)
                if job is None or job.cancelled.is_set():
                    continue
                self._active = job
                try:
                    self._run_job(job)
                finally:
                    self._active = None
        except BaseException as exc:
            self._failure = exc
            log.critical("the engine thread died: %r", exc)
            for job in self._queue.drain():
                job.emit(EngineFailure("the engine thread died"))
            raise

    def _run_job(self, job: Job) -> None:
        try:
            loaded = self.registry.acquire(job.model)
        except Exception as exc:  # a model that fails to load fails its requests, not the engine
            log.error("cannot load %s for %s: %s", job.model.name, job.request.request_id, exc)
            job.emit(EngineFailure(f"the model {job.model.name!r} could not be loaded; see the server log"))
            return
        try:
            self._generate(job, loaded)
        except _Cancelled:
            job.emit(Finish("cancelled", self._usage(job)))
        except Exception as exc:  # one request's failure must not stop the engine
            log.exception("generation failed for %s", job.request.request_id)
            job.emit(EngineFailure(f"generation failed: {type(exc).__name__}: {exc}"))
        finally:
            self.registry.release(job.model)

    @staticmethod
    def _top_k(model: loading.LoadedModel, top_k: int | None) -> int:
        """0 (off) when ``top_k`` keeps every token anyway: mlx-lm refuses k >= the vocabulary size."""
        vocab = model.config.get("vocab_size") or len(model.tokenizer)
        return top_k if top_k and top_k < vocab else 0

    def _usage(self, job: Job) -> Usage:
        return Usage(prompt_tokens=len(job.prompt.tokens), completion_tokens=job.generated_tokens)

    def _generate(self, job: Job, model: loading.LoadedModel) -> None:
        sampling = job.sampling
        s = self.settings
        temperature = s.temperature if sampling.temperature is None else sampling.temperature
        top_p = s.top_p if sampling.top_p is None else sampling.top_p
        sampler = make_sampler(
            temp=temperature,
            top_p=top_p if 0 < top_p < 1 else 0.0,
            min_p=sampling.min_p or 0.0,
            top_k=self._top_k(model, sampling.top_k),
        )
        processors = make_logits_processors(
            # ignore_eos: end-of-sequence made unreachable, so a benchmark gets exactly max_tokens.
            logit_bias=dict.fromkeys(model.tokenizer.eos_token_ids, -float("inf")) if sampling.ignore_eos else None,
            repetition_penalty=sampling.repetition_penalty,
            presence_penalty=sampling.presence_penalty,
            frequency_penalty=sampling.frequency_penalty,
        )
        if sampling.seed is not None:
            mx.random.seed(sampling.seed)

        def check_cancelled(_done: int, _total: int) -> None:
            if job.cancelled.is_set():
                raise _Cancelled

        # Text → events (reasoning, tool calls, stop strings): see output.py.
        output = OutputProcessor(sampling.stop, job.prompt.plan, reasoning=s.reasoning)
        eos = model.tokenizer.eos_token_ids
        started = time.perf_counter()
        first_token_at = None
        reason, stop_sequence = "length", None
        steps = stream_generate(
            model.model,
            model.tokenizer,
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
                    break
        finally:
            steps.close()
        if reason != "cancelled":
            for event in output.finish():
                job.emit(event)
            reason = output.finish_reason(reason)
        ended = time.perf_counter()
        first_token_at = first_token_at or ended
        timings = Timings(
            queued=started - job.submitted,
            prefill=first_token_at - started,
            decode=ended - first_token_at,
            peak_memory_gb=mx.get_peak_memory() / 1e9,
        )
        usage = self._usage(job)
        usage.reasoning_tokens = output.reasoning_tokens
        job.emit(Finish(reason, usage, timings, stop_sequence))


def _with_defaults(request: Sampling, defaults: Sampling) -> Sampling:
    """The request's sampling, with its unset fields taken from ``defaults``."""
    names = [f.name for f in fields(Sampling)]
    return replace(request, **{n: getattr(defaults, n) for n in names if getattr(request, n) is None and getattr(defaults, n) is not None})

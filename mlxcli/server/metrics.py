"""``GET /metrics``: Prometheus metrics, with prometheus-client's registry and WSGI exposition.

Names follow vLLM's (``vllm:`` → ``mlxcli:``) where they mean the same. Nothing here runs on
the engine thread; three sources feed it:

- each chat request, on the HTTP worker thread that reads its events (``Metrics.track``): its
  outcome, its tokens, and the engine's own timings from its ``Finish``; each embeddings request,
  on the thread that waits for its vectors (``Metrics.track_embeddings``); each transcription, on the
  thread that waits for its text (``Metrics.track_transcription``): the audio's seconds and the
  engine's, and their ratio (the real-time factor);
- each refusal, from the error handler (``Metrics.refused``);
- the engine's state, read at scrape time (``EngineCollector``: ``engine.stats()``, ``engine.models()``).

Labels are bounded: ``model`` is a served name (never the name a client sent), ``api`` a
provider's name, ``outcome`` a finish reason, ``embedded``, ``transcribed``, ``cancelled`` or ``error``, ``reason`` a neutral
error kind (core/errors.py).
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable, Iterator

import falcon
import prometheus_client
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.process_collector import ProcessCollector

from mlxcli.core.embeddings import EmbeddingJob, Embeddings
from mlxcli.core.engine import Engine, Generation
from mlxcli.core.errors import ClientClosedRequest, MlxcliError, Overloaded
from mlxcli.core.events import Event, Finish
from mlxcli.core.transcription import Segment, Transcription, TranscriptionJob

# Each counter would get a `_created` series too: twice the series for nothing a dashboard reads.
prometheus_client.disable_created_metrics()

# vLLM's buckets for the same histograms, so that dashboards made for it read these too.
TTFT_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0,
                40.0, 80.0, 160.0, 640.0, 2560.0)  # fmt: skip
ITL_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0)
LATENCY_BUCKETS = (0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0, 240.0,
                   480.0, 960.0, 1920.0, 7680.0)  # fmt: skip
# A request usually waits milliseconds for its turn: vLLM's latency buckets start at 0.3 s.
QUEUE_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)
# Engine seconds per second of audio: below 1 is faster than real time.
RTF_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0)
REFUSAL_KINDS = ("invalid_request", "authentication", "permission", "not_found", "too_large", "overloaded")


class Metrics:
    """The registry of one server (tests run many in one process: never the global one)."""

    def __init__(self, engine: Engine):
        self.registry = registry = CollectorRegistry()
        by_model = ["model"]
        self.requests = Counter(
            "mlxcli:requests", "Requests the engine accepted, by API, model and outcome (stop, length, "
            "tool_calls: chat answered; embedded: embeddings answered; cancelled: the client left; error: failed).",
            ["api", "model", "outcome"], registry=registry,
        )  # fmt: skip
        self.rejected = Counter(
            "mlxcli:requests_rejected", "Requests refused before any work, by reason: overloaded, authentication, "
            "permission (Host, Origin), invalid_request, not_found, too_large.", ["reason"], registry=registry,
        )  # fmt: skip
        self.prompt_tokens = Counter("mlxcli:prompt_tokens", "Prompt tokens of the requests whose prompt was read "
                                     "(cached ones included).", by_model, registry=registry)  # fmt: skip
        self.cached_tokens = Counter("mlxcli:prompt_tokens_cached", "Prompt tokens taken from the prompt cache "
                                     "instead of computed.", by_model, registry=registry)  # fmt: skip
        self.generation_tokens = Counter("mlxcli:generation_tokens", "Tokens generated.", by_model, registry=registry)
        self.ttft = Histogram("mlxcli:time_to_first_token_seconds", "From the request reaching the engine to its "
                              "first token, waiting included.", by_model, buckets=TTFT_BUCKETS, registry=registry)  # fmt: skip
        self.itl = Histogram("mlxcli:inter_token_latency_seconds", "Time between two consecutive output tokens.",
                             by_model, buckets=ITL_BUCKETS, registry=registry)  # fmt: skip
        self.e2e = Histogram("mlxcli:e2e_request_latency_seconds", "From the request reaching the engine to its "
                             "last token (embeddings: to its vectors).", by_model, buckets=LATENCY_BUCKETS,
                             registry=registry)  # fmt: skip
        self.queue = Histogram("mlxcli:request_queue_time_seconds", "Time waiting before the prompt starts being read "
                               "(in the queue, then for the scheduler's first slice of it).", by_model,
                               buckets=QUEUE_BUCKETS, registry=registry)  # fmt: skip
        self.audio_seconds = Counter("mlxcli:audio_seconds", "Seconds of audio transcribed or translated.", by_model,
                                     registry=registry)  # fmt: skip
        self.audio_engine_seconds = Counter("mlxcli:audio_engine_seconds", "Seconds the engine spent on them (their "
                                            "ratio to mlxcli:audio_seconds is the real-time factor).", by_model,
                                            registry=registry)  # fmt: skip
        self.rtf = Histogram("mlxcli:audio_real_time_factor", "Engine seconds per second of audio, per request.",
                             by_model, buckets=RTF_BUCKETS, registry=registry)  # fmt: skip
        for reason in REFUSAL_KINDS:  # every series exists from the first scrape: rate() needs a start
            self.rejected.labels(reason)
        chat = (self.prompt_tokens, self.cached_tokens, self.generation_tokens, self.ttft, self.itl, self.e2e, self.queue)
        speech = (self.audio_seconds, self.audio_engine_seconds, self.rtf, self.e2e)
        for status in engine.models():
            kind = status.kind
            for family in chat if kind == "chat" else speech if kind == "transcription" else (self.prompt_tokens, self.e2e):
                family.labels(status.name)
        registry.register(EngineCollector(engine))
        ProcessCollector(registry=registry)  # memory and CPU of the process (Linux)

    def track(self, generation: Generation, *, api: str, model: str) -> "TrackedGeneration":
        """``generation`` recorded once, when it ends: answered, failed or cancelled."""
        return TrackedGeneration(generation, lambda outcome, finish: self._record(generation, api, model, outcome, finish))

    def track_embeddings(self, job: EmbeddingJob, *, api: str, model: str) -> "TrackedEmbeddings":
        """``job`` recorded once, when its vectors come, it fails or it is cancelled; its latency is
        timed here, from its submission."""
        started = time.perf_counter()

        def record(outcome: str, result: Embeddings | None) -> None:
            self.requests.labels(api, model, outcome).inc()
            if result is not None:
                self.prompt_tokens.labels(model).inc(result.prompt_tokens)
                self.e2e.labels(model).observe(time.perf_counter() - started)

        return TrackedEmbeddings(job, record)

    def track_transcription(self, job: TranscriptionJob, *, api: str, model: str) -> "TrackedTranscription":
        """``job`` recorded once, when its text comes, it fails or it is cancelled."""
        started = time.perf_counter()

        def record(outcome: str, result: Transcription | None) -> None:
            self.requests.labels(api, model, outcome).inc()
            if result is not None:
                self.audio_seconds.labels(model).inc(result.duration)
                self.audio_engine_seconds.labels(model).inc(result.seconds)
                if result.duration > 0:
                    self.rtf.labels(model).observe(result.seconds / result.duration)
                self.e2e.labels(model).observe(time.perf_counter() - started)

        return TrackedTranscription(job, record)

    def refused(self, err: MlxcliError) -> None:
        """Count a request the server refused before any work (the error handler calls it for every error)."""
        if isinstance(err, ClientClosedRequest) or (err.status >= 500 and not isinstance(err, Overloaded)):
            return  # a client that left, or a failure: counted with the request's outcome, not a refusal
        self.rejected.labels(err.kind).inc()

    def _record(self, generation: Generation, api: str, model: str, outcome: str, finish: Finish | None) -> None:
        self.requests.labels(api, model, outcome).inc()
        if finish is not None:
            usage = finish.usage
            prompt, cached, generated = usage.prompt_tokens, usage.cached_tokens, usage.completion_tokens
        else:  # cancelled or failed: what it had done by then (its prompt was read if a token came)
            generated = generation.generated_tokens
            prompt, cached = (generation.prompt_tokens, generation.cached_tokens) if generated else (0, 0)
        self.prompt_tokens.labels(model).inc(prompt)
        self.cached_tokens.labels(model).inc(cached)
        self.generation_tokens.labels(model).inc(generated)
        if finish is None:
            return
        timings = finish.timings
        self.queue.labels(model).observe(timings.queued)
        self.ttft.labels(model).observe(timings.queued + timings.prefill)
        self.e2e.labels(model).observe(timings.queued + timings.prefill + timings.decode)
        itl = self.itl.labels(model)
        for gap in timings.token_gaps:
            itl.observe(gap)


class _RecordedOnce:
    """Calls ``record(outcome, answer)`` the first time ``_end`` is called, never again."""

    def __init__(self, record: Callable[[str, Any], None]):
        self._record: Callable[[str, Any], None] | None = record
        self._lock = threading.Lock()  # cancel() may come from the server's thread while a reader reads

    def _end(self, outcome: str, answer: Any) -> None:
        with self._lock:
            record, self._record = self._record, None
        if record is not None:
            record(outcome, answer)


class TrackedGeneration(_RecordedOnce):
    """A ``Generation`` that calls ``record(outcome, finish)`` once: when its ``Finish`` is read, when
    reading it fails, or when it is cancelled before either."""

    def __init__(self, generation: Generation, record: Callable[[str, Finish | None], None]):
        super().__init__(record)
        self._generation = generation
        self.prompt_tokens = generation.prompt_tokens
        self.compaction = generation.compaction

    @property
    def generated_tokens(self) -> int:
        return self._generation.generated_tokens

    @property
    def cached_tokens(self) -> int:
        return self._generation.cached_tokens

    def next_event(self, timeout: float | None = None) -> Event | None:
        try:
            event = self._generation.next_event(timeout)
        except MlxcliError:
            self._end("error", None)
            raise
        if isinstance(event, Finish):
            self._end(event.reason, event)
        return event

    def __iter__(self) -> Iterator[Event]:
        while True:
            try:
                event = self.next_event()
            except StopIteration:
                return
            if event is not None:
                yield event
                if isinstance(event, Finish):
                    return

    def cancel(self) -> None:
        self._end("cancelled", None)
        self._generation.cancel()


class TrackedEmbeddings(_RecordedOnce):
    """An ``EmbeddingJob`` that calls ``record(outcome, result)`` once: when its vectors come, when it
    fails, or when it is cancelled before either (the server cancels every job once it is done)."""

    def __init__(self, job: EmbeddingJob, record: Callable[[str, Embeddings | None], None]):
        super().__init__(record)
        self._job = job
        self.prompt_tokens = job.prompt_tokens

    def result(self, timeout: float | None = None) -> Embeddings | None:
        try:
            result = self._job.result(timeout)
        except MlxcliError:
            self._end("error", None)
            raise
        if result is not None:
            self._end("embedded", result)
        return result

    def cancel(self) -> None:
        self._end("cancelled", None)
        self._job.cancel()


class TrackedTranscription(_RecordedOnce):
    """A ``TranscriptionJob`` that calls ``record(outcome, result)`` once: when its text comes, when it
    fails, or when it is cancelled before either (the server cancels every job once it is done)."""

    def __init__(self, job: TranscriptionJob, record: Callable[[str, Transcription | None], None]):
        super().__init__(record)
        self._job = job
        self.model = job.model

    def result(self, timeout: float | None = None) -> Transcription | None:
        try:
            result = self._job.result(timeout)
        except MlxcliError:
            self._end("error", None)
            raise
        if result is not None:
            self._end("transcribed", result)
        return result

    def segments(self, timeout: float) -> Iterator[Segment | None]:
        try:
            yield from self._job.segments(timeout)
        except MlxcliError:
            self._end("error", None)
            raise

    def cancel(self) -> None:
        self._end("cancelled", None)
        self._job.cancel()


class EngineCollector:
    """The engine's state, read when Prometheus scrapes (the engine keeps no metrics of its own)."""

    def __init__(self, engine: Engine):
        self.engine = engine

    def collect(self) -> Iterator[GaugeMetricFamily]:
        stats: dict[str, Any] = self.engine.stats()
        yield GaugeMetricFamily("mlxcli:num_requests_running", "Requests generating now.", value=stats["active_requests"])
        yield GaugeMetricFamily("mlxcli:num_requests_waiting", "Requests waiting for the engine.", value=stats["queue_depth"])
        cache = stats["prompt_cache"]
        yield GaugeMetricFamily("mlxcli:prompt_cache_entries", "Prompts kept in the prompt cache.", value=cache["entries"])
        yield GaugeMetricFamily("mlxcli:prompt_cache_bytes", "Memory held by the prompt cache.", value=cache["bytes"])
        loaded = GaugeMetricFamily("mlxcli:model_loaded", "1 while the model's weights are in memory.", labels=["model"])
        load = GaugeMetricFamily("mlxcli:model_load_seconds", "How long the model in memory took to load.", labels=["model"])
        size = GaugeMetricFamily("mlxcli:model_weight_bytes", "Memory held by the model's weights.", labels=["model"])
        for model in self.engine.models():
            loaded.add_metric([model.name], 1.0 if model.state == "loaded" else 0.0)
            if model.load_seconds is not None:
                load.add_metric([model.name], model.load_seconds)
            if model.weight_bytes is not None:
                size.add_metric([model.name], model.weight_bytes)
        yield from (loaded, load, size)
        steps = stats.get("steps")
        if steps is not None:
            yield _histogram("mlxcli:engine_step_seconds", "How long each engine step took (a token for every answer, "
                             "then the prompt reading the scheduler granted).", steps["seconds"])
            yield _histogram("mlxcli:engine_step_prompt_tokens", "Prompt tokens each engine step read.", steps["prompt_tokens"])
        yield from _speculation(stats.get("speculation") or {})


def _speculation(models: dict[str, dict[str, Any]]) -> Iterator[CounterMetricFamily]:
    """Each speculating model's counters (engine/speculation/stats.py); acceptance by position is
    ``spec_position_accepted`` over ``spec_position_proposed``."""
    steps = CounterMetricFamily("mlxcli:spec_steps", "Speculating decode steps: one verification pass of the batch each.", labels=["model"])
    proposed = CounterMetricFamily("mlxcli:spec_proposed_tokens", "Proposed tokens verified (prompt lookup or draft model).", labels=["model"])
    accepted = CounterMetricFamily("mlxcli:spec_accepted_tokens", "Proposed tokens that came true: tokens gained over plain steps.", labels=["model"])
    at = CounterMetricFamily("mlxcli:spec_position_proposed", "Proposed tokens verified, by position in their proposal (1: first).",
                             labels=["model", "position"])
    kept = CounterMetricFamily("mlxcli:spec_position_accepted", "Proposed tokens that came true, by position in their proposal.",
                               labels=["model", "position"])
    for name, counts in models.items():
        steps.add_metric([name], counts["steps"])
        proposed.add_metric([name], counts["proposed"])
        accepted.add_metric([name], counts["accepted"])
        for position, (tried, came) in enumerate(zip(counts["proposed_at"], counts["accepted_at"]), 1):
            at.add_metric([name, str(position)], tried)
            kept.add_metric([name, str(position)], came)
    if models:
        yield from (steps, proposed, accepted, at, kept)


def _histogram(name: str, documentation: str, data: dict[str, Any]) -> HistogramMetricFamily:
    """A histogram the engine keeps (schedule.Histogram's snapshot: per-bucket counts, their sum)."""
    cumulative, buckets = 0, []
    for bound, count in zip([*data["buckets"], float("inf")], data["counts"]):
        cumulative += count
        buckets.append(("+Inf" if bound == float("inf") else repr(float(bound)), cumulative))
    return HistogramMetricFamily(name, documentation, buckets=buckets, sum_value=data["sum"])


class MetricsResource:
    """prometheus-client's own WSGI app behind Falcon's routing, so that the API key, Host and
    CORS checks and the error shapes apply to it as to every route."""

    def __init__(self, metrics: Metrics):
        self._app = prometheus_client.make_wsgi_app(metrics.registry)

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        answer: dict[str, Any] = {}

        def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
            answer.update(status=status, headers=headers)

        resp.data = b"".join(self._app(req.env, start_response))
        resp.status = answer["status"]
        for name, value in answer["headers"]:
            resp.set_header(name, value)

"""The engine as every front end sees it (server, chat, bench): a Protocol, so they never import mlx.

``mlxcli.engine.engine.MlxEngine`` implements it; tests build the server around fakes of it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator, Literal, Protocol, runtime_checkable

from mlxcli.core.embeddings import EmbeddingJob, EmbeddingRequest
from mlxcli.core.events import Compaction, Event
from mlxcli.core.request import ChatRequest

ModelState = Literal["unloaded", "loading", "loaded"]
ModelKind = str  # the requests a model answers (its task): "chat", "embedding", ... one per model kind


@dataclass(frozen=True)
class ModelDetails:
    """What a model is, read once from its directory, for listings that describe models."""

    family: str | None = None  # the architecture, config.json's model_type (llama, qwen3, ...)
    parameters: int | None = None  # parameter count, quantized weights counted unpacked
    quantization: str | None = None  # "4-bit", "8-bit", or the weights' dtype ("bfloat16")
    size_bytes: int | None = None  # the directory's files on disk
    modified_at: float | None = None  # Unix time of its newest file
    digest: str | None = None  # sha256 over its file names, sizes and times: changes when they do
    chat_template: str | None = None
    tools: bool = False  # the model's output format has tool calls
    reasoning: bool = False  # ... and a reasoning block or effort levels
    config: dict[str, Any] = field(default_factory=dict)  # config.json as read


@dataclass(frozen=True)
class ModelStatus:
    """A point-in-time view of one configured model, for /v1/models, /health and `mlxcli ps`."""

    name: str  # the served name
    kind: ModelKind
    aliases: tuple[str, ...]
    context_window: int
    state: ModelState
    active: int  # generations in progress
    loaded_at: float | None = None  # Unix time
    last_used: float | None = None  # Unix time
    unloads_at: float | None = None  # Unix time of the idle unload, when one is set
    load_seconds: float | None = None
    weight_bytes: int | None = None
    dtype: str | None = None
    details: ModelDetails = field(default_factory=ModelDetails)
    capabilities: tuple[str, ...] = ()  # its task first, then what else it takes ("vision": images beside text)

    @property
    def vision(self) -> bool:
        return "vision" in self.capabilities


@runtime_checkable
class Generation(Protocol):
    """One submitted request: iterate for its events (the last is a ``Finish``); ``cancel()`` stops it.

    Iterating raises the request's ``MlxcliError`` if it fails after it was accepted.
    """

    prompt_tokens: int
    compaction: Compaction | None  # what the context overflow policy did to the conversation, if anything
    model: str  # the served name of the model answering it (the request's name resolved, once)

    @property
    def generated_tokens(self) -> int: ...

    @property
    def cached_tokens(self) -> int:
        """Prompt tokens taken from the prompt cache (0 until the prompt is read)."""
        ...

    def next_event(self, timeout: float | None = None) -> Event | None:
        """The next event, or None when none arrived within ``timeout`` seconds (keep-alive ticks)."""
        ...

    def __iter__(self) -> Iterator[Event]: ...

    def cancel(self) -> None: ...


@runtime_checkable
class Work(Protocol):
    """One submitted request of a kind that answers once (``Engine.work``)."""

    model: str  # the served name of the model answering it

    def result(self, timeout: float | None = None) -> Any:
        """The answer, or None if it is not ready within ``timeout`` seconds; raises the request's
        ``MlxcliError`` if it failed."""
        ...

    def partial(self) -> Any | None:
        """The next thing the request reported before its answer (an image in progress), if any; never waits."""
        ...

    def cancel(self) -> None: ...


@runtime_checkable
class Engine(Protocol):
    """Generation for every front end; any thread may call it."""

    @property
    def alive(self) -> bool: ...

    @property
    def default_model(self) -> str:
        """The served name of the model that answers requests naming none."""
        ...

    @property
    def capacity(self) -> int:
        """Requests accepted at once (generating and waiting); beyond it ``submit`` raises Overloaded."""
        ...

    def models(self) -> list[ModelStatus]:
        """Every configured model, in configuration order."""
        ...

    def lookup(self, name: str) -> str | None:
        """The served name of the model this exact name (served name, alias or id) reaches, if any."""
        ...

    def resolve(self, requested: str | None, kind: ModelKind = "chat") -> str:
        """The served name of the model a request of ``kind`` selects by its ``model``; raises ModelNotFound."""
        ...

    def count_tokens(self, request: ChatRequest) -> int:
        """The length of the request's prompt under its model's chat template."""
        ...

    def submit(self, request: ChatRequest) -> Generation:
        """Check and enqueue a request; raises ModelNotFound, InvalidRequest, ContextLengthExceeded or
        Overloaded before anything is generated."""
        ...

    def load(self, model: str | None, keep_alive: float | None = None) -> Generation:
        """Load a model in turn, as a request for it would, and set its ``keep_alive`` (see ChatRequest);
        with ``keep_alive`` 0, unload it once idle instead. The generation's one event is a Finish."""
        ...

    def work(self, task: ModelKind, request: Any) -> "Work":
        """Check and enqueue a request of a model kind that answers once (``task``: embedding, ...) for the
        model it names; raises ModelNotFound, InvalidRequest (naming the field; another kind's model) or
        Overloaded before anything is computed."""
        ...

    def embed(self, request: EmbeddingRequest) -> EmbeddingJob:
        """Check, tokenize and enqueue an embeddings request; raises ModelNotFound, InvalidRequest
        (a chat model, an input over the window, a token id outside the vocabulary, ``dimensions``
        beyond the model's width) or Overloaded before anything is computed."""
        ...

    def stats(self) -> dict[str, Any]:
        """For /health, `mlxcli ps` and /metrics: ``queue_depth``, ``active_requests``,
        ``prompt_cache`` (``entries``, ``bytes``), ``loaded_models``, ``loading_models``."""
        ...

    def reset_peak_memory(self) -> None:
        """Start a new peak for ``Timings.peak_memory_gb`` (benchmarks call it between runs)."""
        ...

    def stop(self, grace: float = 10.0) -> None:
        """Refuse new work, let in-flight work finish for ``grace`` seconds, then cancel it."""
        ...

"""The neutral embeddings request and its answer, between the providers (or bench) and the engine."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from mlxcli.core.request import new_id

MAX_INPUTS = 2048  # inputs in one request (OpenAI's limit)


@dataclass
class EmbeddingRequest:
    """Texts, or token ids fed to the model as they are, each embedded on its own."""

    inputs: list[str | list[int]]
    model: str | None = None
    dimensions: int | None = None  # keep the first N components (re-normalised when the model normalises)
    listed: bool = True  # the inputs came as a list: an error names ``input[i]``, else ``input``
    truncate: bool = False  # cut an input over the model's window to fit it, rather than refuse it
    keep_alive: float | None = None  # as ChatRequest.keep_alive: how long the model stays loaded once idle
    request_id: str = field(default_factory=lambda: new_id("req_"))


@dataclass(frozen=True)
class Embeddings:
    vectors: list[list[float]]  # one per input, in the request's order
    prompt_tokens: int  # every input's tokens, special tokens included


@runtime_checkable
class EmbeddingJob(Protocol):
    """One submitted embeddings request."""

    prompt_tokens: int
    model: str  # the served name of the model answering it

    def result(self, timeout: float | None = None) -> Embeddings | None:
        """The vectors, or None if they are not ready within ``timeout`` seconds; raises the request's
        ``MlxcliError`` if it failed."""
        ...

    def cancel(self) -> None: ...

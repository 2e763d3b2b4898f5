"""Embedding requests on the engine thread, one batch at a time between decode steps.

A request's inputs are sorted by length and cut into batches (``plan``) when it is submitted, so
the padding in a batch is only the gap between neighbours in length. The engine steps the
``Embedder`` (a ``Worker``: worker.py) once per pass of its loop, one batch at a time, beside one
decode step of the running chat batch: an embedding request never waits behind a long generation,
and requests in progress take turns batch by batch, so a small one is not stuck behind a request of
2048 inputs.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable

from mlxcli.core.embeddings import EmbeddingRequest, Embeddings
from mlxcli.core.errors import InvalidRequest
from mlxcli.engine.embeddings.model import EmbeddingConfig, normalize
from mlxcli.engine.job import WorkHandle, WorkJob
from mlxcli.engine.worker import Worker

if TYPE_CHECKING:
    from mlx_lm.tokenizer_utils import TokenizerWrapper

MAX_BATCH = 32  # inputs embedded together at most
MAX_BATCH_TOKENS = 8192  # padded tokens per batch: bounds the memory and the time of one step


def plan(lengths: list[int], max_batch: int = MAX_BATCH, max_tokens: int = MAX_BATCH_TOKENS) -> list[list[int]]:
    """Input indices in batches of similar length: sorted, at most ``max_batch`` inputs and
    ``max_tokens`` padded tokens each (an input longer than that is a batch of its own)."""
    batches: list[list[int]] = []
    current: list[int] = []
    for i in sorted(range(len(lengths)), key=lengths.__getitem__):
        if current and (len(current) >= max_batch or (len(current) + 1) * lengths[i] > max_tokens):
            batches.append(current)
            current = []
        current.append(i)
    return batches + [current] if current else batches


def tokenize(request: EmbeddingRequest, tokenizer: "TokenizerWrapper", window: int) -> list[list[int]]:
    """Each input's tokens; with ``truncate``, cut to the window (a text by its tokenizer, which keeps
    the special tokens it adds at either end)."""
    if not request.truncate:
        return [list(x) if isinstance(x, list) else tokenizer.encode(x) for x in request.inputs]
    return [list(x)[:window] if isinstance(x, list) else tokenizer.encode(x, truncation=True, max_length=window)
            for x in request.inputs]


def check_inputs(request: EmbeddingRequest, tokens: list[list[int]], setup: EmbeddingConfig, window: int) -> None:
    """Refuse, naming the input, what the model cannot embed as it is (nothing is truncated)."""
    for i, ids in enumerate(tokens):
        param = f"input[{i}]" if request.listed else "input"
        if not ids:
            raise InvalidRequest(f"'{param}' has no tokens.", param=param)
        if len(ids) > window:
            raise InvalidRequest(
                f"'{param}' is {len(ids)} tokens long; this model's maximum input length is {window} tokens.",
                param=param,
                code="context_length_exceeded",
            )
        outside = next((t for t in ids if not 0 <= t < setup.vocab_size), None)
        if outside is not None:
            raise InvalidRequest(f"'{param}' holds the token id {outside}, outside the vocabulary (0 to {setup.vocab_size - 1}).", param=param)
    if request.dimensions is not None and request.dimensions > setup.width:
        raise InvalidRequest(
            f"'dimensions' is {request.dimensions}; this model's embeddings have {setup.width} dimensions.", param="dimensions"
        )


@dataclass(eq=False)
class EmbedJob(WorkJob):
    tokens: list[list[int]] = field(default_factory=list)
    batches: deque[list[int]] = field(default_factory=deque)
    vectors: list[list[float] | None] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.vectors = [None] * len(self.tokens)


class EmbeddingHandle(WorkHandle):
    """The caller's side of an ``EmbedJob`` (``mlxcli.core.embeddings.EmbeddingJob``)."""

    def __init__(self, job: EmbedJob, alive: Callable[[], bool], cancel: Callable[[WorkJob], None]):
        super().__init__(job, alive, cancel)
        self.prompt_tokens = sum(len(t) for t in job.tokens)


class Embedder(Worker):
    """One batch of an embedding request per pass."""

    name = "embedding"

    def advance(self, job: EmbedJob) -> Embeddings | None:
        batch = job.batches.popleft()
        model = job.model.loaded.model
        vectors = model.embed([job.tokens[i] for i in batch])
        if job.request.dimensions is not None:
            vectors = vectors[:, : job.request.dimensions]
            vectors = normalize(vectors) if model.setup.normalize else vectors
        for i, vector in zip(batch, vectors.tolist()):
            job.vectors[i] = vector
        if job.batches:
            return None
        return Embeddings(vectors=job.vectors, prompt_tokens=sum(len(t) for t in job.tokens))  # type: ignore[arg-type]

"""What the engine loop steps for a model kind that answers once (embeddings, ...): its requests in
progress, one unit of work per pass of the loop, beside one decode step of the chat batch.

Requests take turns unit by unit (the one whose turn it is first), so a small request is not stuck
behind a large one, and a chat stream is slowed by one unit per token at most. A request holds its
model in memory (``registry.acquire``) from its first unit until it ends. Engine thread only, but
``jobs`` is read anywhere: a request stays listed until it ends.
"""

from __future__ import annotations

import logging
from collections import deque
from typing import TYPE_CHECKING, Any

from mlxcli.core.errors import EngineFailure, MlxcliError
from mlxcli.engine.job import WorkJob

if TYPE_CHECKING:
    from mlxcli.engine.registry import ModelRegistry

log = logging.getLogger("mlxcli.engine")


class Worker:
    """Subclasses do one unit of a job in ``advance``."""

    name = "work"  # how failures are reported: "embedding failed: ..."

    def __init__(self, registry: "ModelRegistry"):
        self._registry = registry
        self._jobs: deque[WorkJob] = deque()

    @property
    def jobs(self) -> list[WorkJob]:
        return list(self._jobs)

    def __len__(self) -> int:
        return len(self._jobs)

    def add(self, job: WorkJob) -> None:
        self._jobs.append(job)

    def advance(self, job: WorkJob) -> Any:
        """One unit of ``job`` (its model is loaded); its outcome once it is complete, else None."""
        raise NotImplementedError

    def step(self) -> None:
        """One unit of the request whose turn it is."""
        job = self._jobs[0]
        if job.cancelled.is_set():
            return self._end(job, None)
        try:
            if not job.acquired:
                self._registry.set_keep_alive(job.model, job.request.keep_alive)
                self._registry.acquire(job.model)
                job.acquired = True
            outcome = self.advance(job)
        except Exception as exc:  # one request's failure must not stop the engine
            log.exception("%s failed for %s", self.name, job.request.request_id)
            return self._end(job, EngineFailure(f"{self.name} failed: {type(exc).__name__}: {exc}"))
        if outcome is None:
            self._jobs.rotate(-1)  # the next request's turn
        else:
            self._end(job, outcome)

    def _end(self, job: WorkJob, outcome: Any | MlxcliError | None) -> None:
        self._jobs.remove(job)
        job.close()
        if job.acquired:
            self._registry.release(job.model)
            job.acquired = False
        if outcome is not None:
            job.emit(outcome)

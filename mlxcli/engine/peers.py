"""One model sharded over the ranks of a group (group.py): every rank runs the same engine loop over its
shard. Rank 0 serves HTTP; at the top of each pass of its loop it tells the other ranks what the pass
does (``Peers.exchange``): the job it takes from its queue, with a sampling seed so that every rank draws
the same tokens, the jobs cancelled since the last pass, and whether the loop ends. The others build the
same jobs (their events go nowhere) and so take the same steps: batching, the prompt cache, stop strings
and constraints follow unchanged. The same collective carries each rank's memory, for ``/health`` and
``mlxcli ps``.

A rank that dies breaks the next collective ("connection to a peer was lost"): the engine thread
fails its requests and stops, and ``lost`` tells the server to shut down and exit non-zero.
"""

from __future__ import annotations

import logging
import pickle
import secrets
import threading
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Callable

import mlx.core as mx

from mlxcli.core.errors import EngineFailure, MlxcliError, ModelError
from mlxcli.core.events import Finish
from mlxcli.engine import constraints
from mlxcli.engine.group import backend, check_world
from mlxcli.engine.job import Job

if TYPE_CHECKING:
    from mlxcli.engine.registry import ModelRegistry

log = logging.getLogger("mlxcli.engine")

NOTHING = (None, [], False)  # a pass that starts no job, cancels none and goes on: no message at all


@dataclass
class RankStatus:
    """What ``/health`` and ``mlxcli ps`` show of the ranks."""

    mode: str
    backend: str
    memory: list[int]  # active bytes of each rank, as of the last pass
    lost: bool = False  # a collective failed: a rank died or cannot be reached

    def json(self) -> dict[str, Any]:
        ranks = [{"rank": r, "memory_bytes": m} for r, m in enumerate(self.memory)]
        return {"mode": self.mode, "backend": self.backend, "world_size": len(self.memory), "ranks": ranks, "lost": self.lost}


class _Discard:
    """A follower's job events: nobody reads them; it only notes that the job has ended."""

    done = False

    def put(self, item: Any) -> None:
        self.done = self.done or isinstance(item, (Finish, MlxcliError))


class Peers:
    """The engine's link to the other ranks; every method but ``cancel`` runs on the engine thread."""

    def __init__(self, registry: "ModelRegistry", mode: str):
        self._registry = registry
        self._world = check_world(mode)
        models = registry.snapshot()
        if len(models) > 1 or models[0].kind != "chat" or models[0].vision:
            raise ModelError("--distributed serves one text chat model: give a single --model (not an embedding or vision model)")
        if registry.idle_unload is not None:
            raise ModelError("--idle-unload cannot be used with --distributed: every rank keeps the model loaded")
        self.rank, self.size = self._world.rank(), self._world.size()
        self.status = RankStatus(mode, backend(), [0] * self.size)
        self.quitting = False  # rank 0 has ended the loop: every rank leaves it in the same pass
        self.on_lost: Callable[[], None] = lambda: None  # the server's shutdown, once the jobs have failed
        self._lock = threading.Lock()
        self._cancels: list[Job] = []  # rank 0: cancelled since the last pass
        self._jobs: dict[int, Job] = {}  # followers: rank 0's jobs still running here, by number
        self._numbers = 0

    @property
    def leader(self) -> bool:
        return self.rank == 0

    def cancel(self, job: Job) -> None:
        """Rank 0 (any thread): the job stops at the next pass, on every rank at once."""
        with self._lock:
            self._cancels.append(job)

    def exchange(self, waiting: Job | None, take: Callable[[], Job | None], stopping: Callable[[], bool]) -> Job | None:
        """One pass's decisions, from rank 0 to all: the job waiting to start (``take`` it from the queue
        when none waits), the cancellations, the end of the loop. Returns this rank's waiting job."""
        try:
            if self.leader:
                new = take() if waiting is None else None
                with self._lock:
                    cancels, self._cancels = self._cancels, []
                self.quitting = stopping()
                message = (self._describe(new) if new is not None else None, [j.number for j in cancels], self.quitting)
                self._share(pickle.dumps(message) if message != NOTHING else b"")
                for job in cancels:
                    job.cancelled.set()
                return new if waiting is None else waiting
            data = self._share(b"")
            described, cancels, self.quitting = pickle.loads(data) if data else NOTHING
            waiting = self._follow(described) if described is not None else waiting
            for number in cancels:  # after the new job: it may be one of them
                if (job := self._jobs.pop(number, None)) is not None:
                    job.cancelled.set()
            return waiting
        except RuntimeError as exc:  # the collective failed: a rank is gone
            raise self.broken(exc) from exc

    def broken(self, exc: BaseException) -> EngineFailure:
        """The group cannot go on: a collective failed, between steps or inside one (a rank is gone, a
        link is down), and this rank's next collective might never return."""
        self.status.lost = True
        log.critical("lost a rank of the distributed group: %s", exc)
        return EngineFailure(f"a rank of the distributed group was lost ({exc}); the server is stopping")

    def _describe(self, job: Job) -> tuple:
        """What a follower needs to build the same job; unseeded sampling gets a seed shared by all ranks."""
        if job.sampling.seed is None and (job.sampling.temperature or 0) > 0:
            job.sampling = replace(job.sampling, seed=secrets.randbits(63))
        self._numbers += 1
        job.number = self._numbers
        return job.number, job.model.name, job.request, job.sampling, job.prompt, job.max_tokens, job.load_only

    def _follow(self, described: tuple) -> Job:
        number, name, request, sampling, rendered, max_tokens, load_only = described
        model = self._registry.lookup(name)
        constraint = constraints.compile(request, rendered.plan, model.tokenizer, model.stop_tokens)
        job = Job(request, model, sampling, rendered, max_tokens, constraint, events=_Discard(), number=number, load_only=load_only)
        self._jobs = {n: j for n, j in self._jobs.items() if not j.events.done} | {number: job}
        return job

    def _share(self, data: bytes) -> bytes:
        """Rank 0's ``data`` on every rank, and every rank's memory: one collective, and one more for data."""
        head = mx.zeros(self.size + 1, dtype=mx.int64)
        head[0] = len(data)
        head[self.rank + 1] = mx.get_active_memory()
        head = mx.distributed.all_sum(head, group=self._world, stream=mx.cpu).tolist()
        self.status.memory = head[1:]
        if not head[0]:
            return b""
        buffer = mx.array(memoryview(data), dtype=mx.uint8) if data else mx.zeros(head[0], dtype=mx.uint8)
        return bytes(memoryview(mx.distributed.all_sum(buffer, group=self._world, stream=mx.cpu)))

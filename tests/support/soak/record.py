"""What a soak run saw, kept from every thread: each request's outcome, stream timings, the server's samples,
and every broken check (a violation), by minute of the run."""

from __future__ import annotations

import threading
import time
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Sample:
    """The server at one moment: from /proc (its RSS, open files, threads) and from /health."""

    t: float  # seconds since the run started
    life: int  # which start of the server (1, then 2 after the crash leg)
    quiet: bool  # taken with no request in flight (the mix paused): the points bounds compare
    rss_bytes: int
    fds: int
    threads: int
    in_flight: int
    queue_depth: int
    active_requests: int
    cache_entries: int
    cache_bytes: int
    disk_entries: int
    disk_bytes: int
    store_bytes: int  # the store's SQLite files
    loaded_models: list[str] = field(default_factory=list)


@dataclass
class Event:
    """A refusal or a lost connection: whether it was expected is judged at the end, against the bursts'
    windows and the crash's."""

    t: float
    kind: str  # "overloaded" (with its Retry-After) or "transport"
    api: str
    detail: str


def percentile(values: list[float], q: float) -> float | None:
    """The ``q`` quantile (0..1) by nearest rank; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


class Recorder:
    def __init__(self, clock=time.monotonic):
        self._clock = clock
        self.started = clock()
        self._lock = threading.Lock()
        self.statuses: dict[int, Counter] = defaultdict(Counter)  # minute → status → requests
        self.scenarios: dict[int, Counter] = defaultdict(Counter)  # minute → scenario → requests
        self.ttft: dict[int, list[float]] = defaultdict(list)
        self.itl: dict[int, list[float]] = defaultdict(list)
        self.samples: list[Sample] = []
        self.events: list[Event] = []
        self.violations: list[dict[str, Any]] = []
        self.completed: dict[str, tuple[float, dict[str, Any]]] = {}  # stored response id → (when, what it said)
        self.streams_checked = 0
        self.answers_checked = 0

    def now(self) -> float:
        return self._clock() - self.started

    def minute(self, t: float | None = None) -> int:
        return int((self.now() if t is None else t) // 60)

    def request(self, scenario: str, status: int, *, ttft: float | None = None, itls: list[float] = ()) -> None:
        with self._lock:
            m = self.minute()
            self.statuses[m][status] += 1
            self.scenarios[m][scenario] += 1
            if ttft is not None:
                self.ttft[m].append(ttft)
                self.itl[m].extend(itls)

    def checked(self, *, stream: bool = False, answer: bool = False) -> None:
        with self._lock:
            self.streams_checked += stream
            self.answers_checked += answer

    def violation(self, check: str, detail: str) -> None:
        with self._lock:
            self.violations.append({"t": round(self.now(), 1), "check": check, "detail": detail[:500]})

    def event(self, kind: str, api: str, detail: str = "") -> None:
        with self._lock:
            self.events.append(Event(self.now(), kind, api, detail[:200]))

    def response_completed(self, response_id: str, expected: dict[str, Any]) -> None:
        """A stored response the client saw complete: the crash leg retrieves it."""
        with self._lock:
            self.completed[response_id] = (self.now(), expected)

    def sample(self, sample: Sample) -> None:
        with self._lock:
            self.samples.append(sample)

    def completed_before(self, t: float) -> dict[str, dict[str, Any]]:
        with self._lock:
            return {rid: expected for rid, (when, expected) in self.completed.items() if when < t}

    def minutes(self) -> list[dict[str, Any]]:
        """Per minute: requests by status and scenario, TTFT and inter-token p50/p95 (ms), the last sample."""
        with self._lock:
            last = max([*self.statuses, *(int(s.t // 60) for s in self.samples), 0])
            rows = []
            for m in range(last + 1):
                ttft, itl = self.ttft.get(m, []), self.itl.get(m, [])
                in_minute = [s for s in self.samples if int(s.t // 60) == m]
                rows.append({
                    "minute": m,
                    "statuses": {str(k): v for k, v in sorted(self.statuses.get(m, {}).items())},
                    "scenarios": dict(sorted(self.scenarios.get(m, {}).items())),
                    "streams": len(ttft),
                    **{f"ttft_ms_{name}": _ms(percentile(ttft, q)) for name, q in (("p50", 0.5), ("p95", 0.95))},
                    **{f"itl_ms_{name}": _ms(percentile(itl, q)) for name, q in (("p50", 0.5), ("p95", 0.95))},
                    "server": asdict(in_minute[-1]) if in_minute else None,
                })
            return rows


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 1)

"""A soak run's timeline: start the server, let the workers' mix run, and on schedule take a sample, a quiet
point, a burst, a model swap, the crash leg; at the end stop the server as a user does (SIGTERM) and write the
report (JSON) and the plot (PNG)."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tests.support.soak import crash, legs
from tests.support.soak.mix import Gate, Shared, Worker
from tests.support.soak.plot import plot
from tests.support.soak.record import Recorder
from tests.support.soak.report import Limits, bounds, log_problems, summary
from tests.support.soak.server import REPO, SoakServer, build_models


@dataclass
class Config:
    out: Path
    minutes: float = 30.0
    seed: int = 1
    workers: int = 4
    crash_at: float | None = None  # minutes; None: a sixth of the run; 0: no crash leg
    warmup: float | None = None  # minutes after the last start before the growth window (None: a sixth of the run)
    sample_every: float = 5.0  # seconds
    quiet_every: float = 60.0
    burst_every: float = 90.0
    swap_every: float = 180.0
    burst_extra: int = 4  # requests beyond what the server admits
    max_batch: int = 4
    max_queue: int = 8
    prompt_cache_bytes: int = 256 << 10  # small: the memory tier evicts to disk all the time
    prompt_cache_entries: int = 24
    prompt_cache_disk_bytes: int = 2 << 20
    rss_margin: int = 1 << 30
    max_rss_growth: float = 0.05
    fd_slack: int = 4
    thread_slack: int = 2
    serve_flags: list[str] = field(default_factory=list)
    home: Path = Path(os.environ.get("MLXCLI_TEST_HOME", REPO / ".cache" / "test-home"))  # the tests' models (pulled once)

    @property
    def crash_minute(self) -> float:
        return self.minutes / 6 if self.crash_at is None else self.crash_at

    @property
    def flags(self) -> list[str]:
        return [
            "--temperature", "0", "--max-batch", str(self.max_batch), "--max-queue", str(self.max_queue), "--max-loaded-models", "2",
            "--max-tokens", "512", "--prompt-cache-bytes", str(self.prompt_cache_bytes),
            "--prompt-cache-entries", str(self.prompt_cache_entries), "--prompt-cache-disk-bytes", str(self.prompt_cache_disk_bytes),
            "--context-window", "16384", *self.serve_flags,
        ]


def schedule(config: Config) -> list[tuple[float, str]]:
    """(seconds, what) for the whole run, in order; quiet points and bursts stay clear of the crash."""
    end = config.minutes * 60
    events = [(k * config.quiet_every, "quiet") for k in range(1, int(end // config.quiet_every) + 1) if k * config.quiet_every < end]
    events += [(config.burst_every * (k + 0.5), "burst") for k in range(int(end // config.burst_every)) if config.burst_every * (k + 0.5) < end]
    events += [(config.swap_every * (k + 0.25), "swap") for k in range(int(end // config.swap_every) + 1) if config.swap_every * (k + 0.25) < end]
    if config.crash_minute > 0:
        events.append((config.crash_minute * 60, "crash"))
    return sorted(events)


def run(config: Config) -> dict[str, Any]:
    config.out.mkdir(parents=True, exist_ok=True)
    models = build_models(config.home, config.out / "models")
    server = SoakServer(config.out, models, config.flags, config.home)
    load_start = _load()
    startup = server.start()
    rec, shared, gate, done = Recorder(), Shared(), Gate(), threading.Event()
    http_threads = config.max_batch + config.max_queue + 8  # serve's default --threads
    bursts: list[dict] = []
    swaps: list[dict] = []
    crash_leg: dict | None = None
    last_start = 0.0
    capacity = config.max_batch + config.max_queue
    try:
        legs.warm_up(server, rec, shared, http_threads)
        server.ready.set()
        last_start = rec.now()
        workers = [Worker(i, config.seed, server.url, rec, shared, gate, server.ready, done) for i in range(config.workers)]
        for worker in workers:
            worker.start()
        next_sample, end, last_quiet = config.sample_every, config.minutes * 60, 0.0
        for at, what in [*schedule(config), (end, "end")]:
            while rec.now() < at:
                if rec.now() >= next_sample:
                    _sample(server, rec)
                    next_sample += config.sample_every
                time.sleep(max(0.0, min(0.5, at - rec.now(), next_sample - rec.now())))
            if what == "quiet" and rec.now() - last_quiet >= config.quiet_every / 2:  # not twice in a row when late
                legs.quiet_point(server, rec, gate)
                last_quiet = rec.now()
            elif what == "burst":
                bursts.append(legs.burst(server, rec, capacity + config.burst_extra, len(bursts) + 1))
            elif what == "swap":
                swaps.append(legs.swap(server, rec))
            elif what == "crash":
                crash_leg = crash.crash_leg(server, rec, lambda: legs.warm_up(server, rec, shared, http_threads))
                last_start = crash_leg["ready_at"]
        done.set()
        legs.quiet_point(server, rec, gate)  # the end: workers stop at their next scenario
        for worker in workers:
            worker.join(120)
        if crash_leg is not None:
            crash.check_removed(server, rec, crash_leg)
    finally:
        done.set()
        exit_code = server.stop() if server.proc and server.proc.poll() is None else None
    if exit_code != 0:
        rec.violation("shutdown", f"SIGTERM: the server exited with {exit_code} (None: killed after 60 s)")
    for problem in log_problems(sorted(config.out.glob("server-*.log"))):
        rec.violation("server log", problem)
    limits = Limits(models.weight_bytes, config.prompt_cache_bytes, config.prompt_cache_entries, config.prompt_cache_disk_bytes,
                    config.rss_margin, config.max_rss_growth, config.fd_slack, config.thread_slack)
    warmup = config.minutes / 6 if config.warmup is None else config.warmup
    window_start = last_start + warmup * 60
    report = {
        "minutes": config.minutes,
        "config": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(config).items()},
        "main": _git("rev-parse", "HEAD"), "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "load": {"start": load_start, "end": _load()},
        "server": {"command": server.command, "startup_s": round(startup, 1), "exit_code": exit_code},
        "limits": {**asdict(limits), "rss_ceiling": limits.rss_ceiling},
        "growth_window_start_s": round(window_start, 1),
        "bounds": bounds(rec, limits, window_start, bursts, crash_leg),
        "violations": rec.violations,
        "checked": {"answers": rec.answers_checked, "streams": rec.streams_checked},
        "minutes_table": rec.minutes(),
        "bursts": bursts, "swaps": swaps, "crash": crash_leg,
        "events": [asdict(e) for e in rec.events],
        "samples": [asdict(s) for s in rec.samples],
    }
    report["ok"] = all(b["ok"] is not False for b in report["bounds"])
    (config.out / "report.json").write_text(json.dumps(report, indent=1))
    plot(report, config.out / "soak.png")
    print(summary(report), flush=True)
    return report


def _sample(server: SoakServer, rec: Recorder) -> None:
    try:
        rec.sample(server.sample(rec.now(), quiet=False))
    except Exception as exc:  # noqa: BLE001 - /health must answer while the server is up
        rec.violation("health", f"sampling the server: {exc!r}")


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def _git(*args: str) -> str | None:
    result = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True)
    return result.stdout.strip() or None

"""The soak's verdict: its bounds, computed from what the Recorder saw, beside every violation the checks
recorded as they went. Bounds are about growth and correctness, never speed: latency is reported, not judged.

- RSS: every sample under the weights of every model + --prompt-cache-bytes + a stated margin (the Python
  runtime with MLX, mlx-lm, mlx-vlm and transformers imported); between the first and the last quiet point of
  the growth window (the last life of the server, after a warm-up) it grows by less than ``max_rss_growth``.
- The prompt cache within its byte and entry budgets, in memory and on disk, at every quiet point.
- Open files and threads flat over the window: the last quiet point within a small slack of the first.
- No refusal outside a burst, no lost connection outside the crash, at least one refusal in the bursts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.soak.record import Recorder, Sample

LOG_RECORD = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ (\w+) ", re.M)  # logs.py's format: time, level, ...


@dataclass
class Limits:
    weight_bytes: int
    prompt_cache_bytes: int
    prompt_cache_entries: int
    prompt_cache_disk_bytes: int
    rss_margin: int
    max_rss_growth: float
    fd_slack: int
    thread_slack: int

    @property
    def rss_ceiling(self) -> int:
        return self.weight_bytes + self.prompt_cache_bytes + self.rss_margin


def _bound(name: str, value: Any, limit: Any, ok: bool | None, note: str = "") -> dict[str, Any]:
    return {"name": name, "value": value, "limit": limit, "ok": ok, **({"note": note} if note else {})}


def window(samples: list[Sample], start: float) -> list[Sample]:
    """The quiet points of the growth window: the server's last life, from ``start`` on."""
    last = max((s.life for s in samples), default=0)
    return [s for s in samples if s.quiet and s.life == last and s.t >= start]


def bounds(rec: Recorder, limits: Limits, window_start: float, bursts: list[dict], crash: dict | None) -> list[dict[str, Any]]:
    samples, quiet = rec.samples, [s for s in rec.samples if s.quiet]
    measured = window(samples, window_start)
    out = [_bound("rss_ceiling_bytes", max((s.rss_bytes for s in samples), default=0), limits.rss_ceiling,
                  all(s.rss_bytes <= limits.rss_ceiling for s in samples),
                  "weights of every served model + --prompt-cache-bytes + the margin")]
    if len(measured) >= 2:
        first, last = measured[0], measured[-1]
        growth = (last.rss_bytes - first.rss_bytes) / first.rss_bytes
        out.append(_bound("rss_growth", round(growth, 4), limits.max_rss_growth, growth < limits.max_rss_growth,
                          f"quiet points at {first.t:.0f}s and {last.t:.0f}s"))
        out.append(_bound("fds_growth", last.fds - first.fds, limits.fd_slack, last.fds - first.fds <= limits.fd_slack))
        out.append(_bound("threads_growth", last.threads - first.threads, limits.thread_slack,
                          last.threads - first.threads <= limits.thread_slack))
    else:
        out.append(_bound("rss_growth", None, limits.max_rss_growth, None, "fewer than 2 quiet points in the window: not measured"))
    out += [
        _bound("prompt_cache_bytes", max((s.cache_bytes for s in quiet), default=0), limits.prompt_cache_bytes,
               all(s.cache_bytes <= limits.prompt_cache_bytes for s in quiet)),
        _bound("prompt_cache_entries", max((s.cache_entries for s in quiet), default=0), limits.prompt_cache_entries,
               all(s.cache_entries <= limits.prompt_cache_entries for s in quiet)),
        _bound("prompt_cache_disk_bytes", max((s.disk_bytes for s in quiet), default=0), limits.prompt_cache_disk_bytes,
               all(s.disk_bytes <= limits.prompt_cache_disk_bytes for s in quiet)),
    ]
    windows = [b["window"] for b in bursts]
    stray = [e for e in rec.events if e.kind == "overloaded" and not any(a <= e.t <= b for a, b in windows)]
    out.append(_bound("refusals_outside_bursts", len(stray), 0, not stray, "; ".join(f"{e.t:.0f}s {e.api}" for e in stray[:5])))
    down = (crash["killed_at"] - 1, crash["ready_at"] + 5) if crash else None
    lost = [e for e in rec.events if e.kind == "transport" and not (down and down[0] <= e.t <= down[1])]
    out.append(_bound("lost_connections_outside_crash", len(lost), 0, not lost, "; ".join(f"{e.t:.0f}s {e.detail}" for e in lost[:3])))
    if bursts:
        refused = sum(b["refused"] for b in bursts)
        out.append(_bound("burst_refusals", refused, ">= 1", refused >= 1, "bursts beyond the bound must meet 503/529"))
    out.append(_bound("violations", len(rec.violations), 0, not rec.violations))
    return out


def log_problems(paths: list[Path]) -> list[str]:
    """Each ERROR or CRITICAL record and each traceback in the server's logs: its first line and its last (the
    exception)."""
    found = []
    for path in paths:
        text = path.read_text(errors="replace")
        starts = [0, *(m.start() for m in LOG_RECORD.finditer(text)), len(text)]
        for begin, end in zip(starts, starts[1:]):
            record = text[begin:end].strip()
            level = LOG_RECORD.match(record)
            if record and ((level and level.group(1) in ("ERROR", "CRITICAL")) or "Traceback (most recent call last)" in record):
                lines = record.splitlines()
                found.append(f"{path.name}: {lines[0][:200]}" + (f" ... {lines[-1][:200]}" if len(lines) > 1 else ""))
    return found


def summary(report: dict[str, Any]) -> str:
    """A few lines for the terminal: each bound, then the violations."""
    lines = [f"soak: {report['minutes']:g} min, {report['checked']['answers']} answers and {report['checked']['streams']} "
             f"streams checked, load {report['load']['start']} → {report['load']['end']}"]
    for b in report["bounds"]:
        mark = {True: "ok  ", False: "FAIL", None: "--  "}[b["ok"]]
        lines.append(f"  {mark} {b['name']}: {b['value']} (limit {b['limit']}){'  ' + b['note'] if b.get('note') else ''}")
    lines += [f"  violation at {v['t']}s: {v['check']}: {v['detail']}" for v in report["violations"][:20]]
    return "\n".join(lines)

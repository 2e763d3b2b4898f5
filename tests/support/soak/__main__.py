"""python -m tests.support.soak [--minutes 30] [--seed 1] [--out DIR] [...] [-- SERVE FLAGS]: exits 1 when a bound
is broken (report.json and soak.png in DIR either way)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from tests.support.soak.run import REPO, Config

SIZE_UNITS = {"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30}


def size(text: str) -> int:
    for unit, factor in SIZE_UNITS.items():
        if text.endswith(unit):
            return int(float(text[: -len(unit)]) * factor)
    return int(text)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    serve = argv[argv.index("--") + 1 :] if "--" in argv else []
    own = argv[: argv.index("--")] if "--" in argv else argv
    d = Config(out=Path())
    p = argparse.ArgumentParser(prog="scripts/soak", description="Mixed agent traffic against `mlxcli serve` for N minutes; "
                                "checks every answer and stream, and that memory, caches, files and threads stay bounded.")
    p.add_argument("--minutes", type=float, default=d.minutes)
    p.add_argument("--seed", type=int, default=d.seed, help="The mix's seed (each worker draws from its own generator).")
    p.add_argument("--workers", type=int, default=d.workers, help="Clients sending the mix at once.")
    p.add_argument("--out", type=Path, help="Folder for the report, plot, logs, store and prompt cache (default: .cache/soak/TIME).")
    p.add_argument("--crash-at", type=float, help="Minute of the crash leg (default: a sixth of the run; 0: none).")
    p.add_argument("--warmup", type=float, help="Minutes after the last start before the growth window (default: a sixth of the run).")
    p.add_argument("--quiet-every", type=float, default=d.quiet_every, help="Seconds between quiet points.")
    p.add_argument("--burst-every", type=float, default=d.burst_every, help="Seconds between bursts.")
    p.add_argument("--swap-every", type=float, default=d.swap_every, help="Seconds between model swaps.")
    p.add_argument("--max-batch", type=int, default=d.max_batch)
    p.add_argument("--max-queue", type=int, default=d.max_queue)
    p.add_argument("--prompt-cache-bytes", type=size, default=d.prompt_cache_bytes)
    p.add_argument("--prompt-cache-disk-bytes", type=size, default=d.prompt_cache_disk_bytes)
    p.add_argument("--rss-margin", type=size, default=d.rss_margin, help="RSS allowed beyond weights and prompt cache (default 1GiB).")
    p.add_argument("--max-rss-growth", type=float, default=d.max_rss_growth, help="Over the growth window (default 0.05).")
    o = p.parse_args(own)
    out = o.out or REPO / ".cache" / "soak" / time.strftime("%Y%m%d-%H%M%S")
    config = Config(
        out=out, minutes=o.minutes, seed=o.seed, workers=o.workers, crash_at=o.crash_at, warmup=o.warmup,
        quiet_every=o.quiet_every, burst_every=o.burst_every, swap_every=o.swap_every, max_batch=o.max_batch,
        max_queue=o.max_queue, prompt_cache_bytes=o.prompt_cache_bytes, prompt_cache_disk_bytes=o.prompt_cache_disk_bytes,
        rss_margin=o.rss_margin, max_rss_growth=o.max_rss_growth, serve_flags=serve,
    )
    from tests.support.soak.run import run

    report = run(config)
    print(f"report: {out / 'report.json'}; plot: {out / 'soak.png'}")
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Decode tok/s of a model through `mlxcli serve` (HTTP, streaming) against the engine called directly.

Usage: .venv/bin/python scripts/bench_overhead.py [--model NAME] [--tokens 128] [--runs 3] [--no-fast-path]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

PROMPT = [{"role": "user", "content": "Write a long story about a dragon who learns to bake bread."}]


def direct(model: str | None, tokens: int, runs: int) -> list[float]:
    from mlxcli.core.collect import collect
    from mlxcli.core.request import ChatRequest, Message, Sampling
    from mlxcli.engine.engine import Engine
    from mlxcli.engine.models import resolve_model
    from mlxcli.engine.settings import EngineSettings

    resolved = resolve_model(model)
    engine = Engine.from_path(resolved.name, resolved.path, EngineSettings()).start()
    rates = []
    try:
        for i in range(runs + 1):
            request = ChatRequest(
                messages=[Message("user", PROMPT[0]["content"])], sampling=Sampling(temperature=0.0, max_tokens=tokens)
            )
            finish = collect(engine.submit(request)).finish
            if i:  # the first run warms up
                rates.append((finish.usage.completion_tokens - 1) / finish.timings.decode)
    finally:
        engine.stop()
    return rates


def http(model: str | None, tokens: int, runs: int, fast_path: bool) -> list[float]:
    import httpx
    import orjson

    from mlxcli.paths import data_home
    from tests.support.process import ServeProcess

    args = ["--model", model] if model else []
    if not fast_path:
        args.append("--no-fast-path")
    rates = []
    with ServeProcess(*args, home=data_home()) as proc:
        for i in range(runs + 1):
            body = {"messages": PROMPT, "temperature": 0, "max_tokens": tokens, "stream": True,
                    "stream_options": {"include_usage": True}}
            first = last = None
            usage = None
            with httpx.stream("POST", proc.url + "/v1/chat/completions", json=body, timeout=300) as r:
                for line in r.iter_lines():
                    if not line.startswith("data: ") or line == "data: [DONE]":
                        continue
                    chunk = orjson.loads(line[6:])
                    if chunk.get("usage"):
                        usage = chunk["usage"]
                    elif chunk["choices"] and chunk["choices"][0]["delta"].get("content"):
                        last = time.perf_counter()
                        first = first or last
            if i:
                rates.append((usage["completion_tokens"] - 1) / (last - first))
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model")
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-fast-path", dest="fast_path", action="store_false")
    args = parser.parse_args()

    from mlxcli.engine import platform

    info = platform.configure(args.fast_path)
    print(f"fast path: {'on' if info.fast_path else 'off'} {info.note}")
    d = direct(args.model, args.tokens, args.runs)
    h = http(args.model, args.tokens, args.runs, args.fast_path)
    md, mh = statistics.median(d), statistics.median(h)
    print(f"direct engine : {md:6.1f} tok/s decode (runs {', '.join(f'{x:.1f}' for x in d)})")
    print(f"HTTP streaming: {mh:6.1f} tok/s decode (runs {', '.join(f'{x:.1f}' for x in h)})")
    print(f"ratio HTTP/direct: {mh / md:.3f}")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""What /metrics costs: scrape latency idle and during N concurrent streams (beside /health's, a
route that does no metrics work: what the machine itself costs), and the streams' throughput with
and without a scraper at 1 Hz (rounds interleaved: off, on, off, on...).

Runs against a server you started (``mlxcli serve``, the default model); this process is only a
client, so its own threads do not compete with the server's for the GIL.

    .venv/bin/python scripts/bench_metrics.py [--url http://127.0.0.1:8000] [--streams 8] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import threading
import time

import httpx

PROMPT = "Write a long story about a lighthouse keeper and a storm."


def scrape_latencies(client: httpx.Client, count: int, interval: float = 0.0, path: str = "/metrics") -> list[float]:
    out = []
    for _ in range(count):
        started = time.perf_counter()
        r = client.get(path)
        out.append(time.perf_counter() - started)
        r.raise_for_status()
        time.sleep(interval)
    return out


def stream(url: str, tokens: int, results: list[int]) -> None:
    body = {"messages": [{"role": "user", "content": PROMPT}], "max_tokens": tokens, "temperature": 0,
            "stream": True, "stream_options": {"include_usage": True}}  # fmt: skip
    with httpx.stream("POST", url + "/v1/chat/completions", json=body, timeout=600) as r:
        for line in r.iter_lines():
            if '"usage":{"prompt_tokens"' in line:
                results.append(int(line.split('"completion_tokens":')[1].split(",")[0]))


def round_(url: str, streams: int, tokens: int, scrape: bool) -> tuple[float, list[float], list[float]]:
    """Aggregate output tok/s of ``streams`` concurrent streams; /metrics and /health latencies meanwhile (1 Hz)."""
    results: list[int] = []
    threads = [threading.Thread(target=stream, args=(url, tokens, results)) for _ in range(streams)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    latencies: list[float] = []
    health: list[float] = []
    with httpx.Client(base_url=url, timeout=30) as client:
        client.get("/health")
        while any(t.is_alive() for t in threads):
            if scrape:
                latencies += scrape_latencies(client, 1)
                health += scrape_latencies(client, 1, path="/health")
            time.sleep(1.0)
    for t in threads:
        t.join()
    return sum(results) / (time.perf_counter() - started), latencies, health


def ms(values: list[float]) -> str:
    values = sorted(values)
    p95 = values[min(len(values) - 1, int(0.95 * len(values)))]
    return f"p50 {statistics.median(values) * 1000:.1f} ms, p95 {p95 * 1000:.1f} ms, max {values[-1] * 1000:.1f} ms (n={len(values)})"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--streams", type=int, default=8)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()}")
    with httpx.Client(base_url=args.url, timeout=30) as client:
        client.get("/metrics")
        size = len(client.get("/metrics").content)
        print(f"idle scrape: {ms(scrape_latencies(client, 50, 0.02))}; {size} bytes")
    off, on, busy, health = [], [], [], []
    for _ in range(args.rounds):
        off.append(round_(args.url, args.streams, args.tokens, scrape=False)[0])
        tps, latencies, healths = round_(args.url, args.streams, args.tokens, scrape=True)
        on.append(tps)
        busy += latencies
        health += healths
    print(f"/metrics during {args.streams} streams: {ms(busy)}")
    print(f"/health during {args.streams} streams:  {ms(health)}")
    print(f"{args.streams} streams, output tok/s without scraping: {[round(x, 1) for x in off]} (median {statistics.median(off):.1f})")
    print(f"{args.streams} streams, output tok/s scraped at 1 Hz:  {[round(x, 1) for x in on]} (median {statistics.median(on):.1f})")
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()

"""Turn N of a conversation right after `mlxcli serve` restarts, with the prompt cache's disk tier and without.

For each round and each mode (interleaved: disk, none, disk, none, ...): start a server, run turns 1..N-1
of a fresh conversation (the turns of `mlxcli bench --turns`: each adds a user message of PROMPT tokens
and asks for GEN), stop it with SIGTERM (the disk tier is written then), start it again on the same
directory, and time turn N (streaming Chat Completions, the time to the first token). Also reported:
the disk tier's write (at shutdown) and read (at turn N) throughput, and the load average.

    .venv/bin/python scripts/bench_restart.py [--model smollm2-135m] [--turns 6] [--prompt-tokens 200]
        [--gen-tokens 64] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from mlxcli.bench.prompts import PromptSet
from mlxcli.bench.scenarios import make_request
from mlxcli.bench.targets import HttpTarget
from mlxcli.core.request import Message
from mlxcli.engine.tokens import PromptCounter
from mlxcli.models import resolve_model

WROTE = re.compile(r"prompt cache: wrote (\d+) entries \(([\d.]+) MB\) to .* in ([\d.]+) s")


class Server:
    def __init__(self, model: str, port: int, cache_dir: str, log: Path):
        self.url = f"http://127.0.0.1:{port}"
        self.log = log
        with open(log, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "mlxcli", "serve", "--model", model, "--port", str(port), "--prompt-cache-dir", cache_dir],
                stdout=out, stderr=subprocess.STDOUT,
            )
        while True:
            if self.proc.poll() is not None:
                sys.exit(f"mlxcli serve exited:\n{log.read_text()}")
            try:
                if httpx.get(self.url + "/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=300)


def round_trip(args, mode: str, rnd: int, prompts: PromptSet, tmp: Path) -> dict:
    cache_dir = str(tmp / f"cache-{mode}-{rnd}") if mode == "disk" else "none"
    log = tmp / f"serve-{mode}-{rnd}.log"
    conversation: list[Message] = []
    server = Server(args.model, args.port, cache_dir, log)
    target = HttpTarget(server.url + "/v1")
    for k in range(args.turns - 1):
        conversation += prompts.get(args.prompt_tokens, rnd * args.turns + k)
        result = target.run(make_request(conversation, args.gen_tokens))
        conversation.append(Message("assistant", result.text))
    target.close()
    server.stop()
    wrote = WROTE.findall(log.read_text())
    server = Server(args.model, args.port, cache_dir, log)
    target = HttpTarget(server.url + "/v1")
    conversation += prompts.get(args.prompt_tokens, rnd * args.turns + args.turns - 1)
    load = os.getloadavg()[0]
    last = target.run(make_request(conversation, args.gen_tokens))
    disk = httpx.get(server.url + "/health").json()["prompt_cache"].get("disk") or {}
    target.close()
    server.stop()
    row = {"mode": mode, "round": rnd, "ttft": last.ttft, "prompt": last.prompt_tokens, "cached": last.cached_tokens, "load": load}
    if wrote:
        entries, mb, seconds = wrote[-1]
        row.update(entries=int(entries), written_mb=float(mb), write_mb_s=float(mb) / float(seconds) if float(seconds) else None)
    row["read_mb_s"] = disk.get("read_mb_per_s")
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--turns", type=int, default=6)
    parser.add_argument("--prompt-tokens", type=int, default=200)
    parser.add_argument("--gen-tokens", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--port", type=int, default=0, help="default: a free one")
    args = parser.parse_args()
    if not args.port:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            args.port = s.getsockname()[1]
    prompts = PromptSet(PromptCounter(resolve_model(args.model).path))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for rnd in range(args.rounds):
            for mode in ("disk", "none") if rnd % 2 == 0 else ("none", "disk"):
                row = round_trip(args, mode, rnd, prompts, Path(tmp))
                rows.append(row)
                extra = f", wrote {row['entries']} entries {row['written_mb']:.1f} MB at {row['write_mb_s']:.0f} MB/s, read at {row['read_mb_s']} MB/s" if mode == "disk" else ""
                print(f"round {rnd} {mode:>4}: turn {args.turns} TTFT {row['ttft']:.2f} s, prompt {row['prompt']}, cached {row['cached']}, load {row['load']:.2f}{extra}", flush=True)
    for mode in ("disk", "none"):
        ttfts = [r["ttft"] for r in rows if r["mode"] == mode]
        print(f"{mode}: median TTFT {statistics.median(ttfts):.2f} s [{min(ttfts):.2f}–{max(ttfts):.2f}]")
    disk, cold = (statistics.median(r["ttft"] for r in rows if r["mode"] == m) for m in ("disk", "none"))
    print(f"disk ÷ none: ×{disk / cold:.2f}")


if __name__ == "__main__":
    main()

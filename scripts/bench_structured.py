"""Structured-output set-up costs on a model's tokenizer: the one-off llguidance tokenizer build, and
the compile time (what ``submit`` adds to a request) of every test schema.

    PYTHONPATH=. .venv/bin/python scripts/bench_structured.py [MODEL] [ROUNDS]
"""

from __future__ import annotations

import statistics
import sys
import time

from mlxcli.core.request import ChatRequest, Grammar, Message
from mlxcli.engine import constraints
from mlxcli.engine.loading import read_config, tokenizer_of
from mlxcli.engine.output import OutputPlan
from mlxcli.models import resolve_model
from tests.support.schemas import SCHEMAS


def main(model: str | None = None, rounds: int = 20) -> None:
    path = resolve_model(model).path
    tokenizer = tokenizer_of(path, read_config(path))
    started = time.perf_counter()
    constraints.TOKENIZERS.get(tokenizer)
    print(f"tokenizer build: {time.perf_counter() - started:.2f} s ({len(tokenizer._tokenizer)} tokens)")
    seconds = []
    for _ in range(rounds):
        for schema in SCHEMAS.values():
            request = ChatRequest([Message("user", "x")], response_format=Grammar("json", "schema", schema))
            started = time.perf_counter()
            constraints.compile(request, OutputPlan(), tokenizer)
            seconds.append(time.perf_counter() - started)
    ms = sorted(s * 1000 for s in seconds)
    p95 = ms[int(0.95 * (len(ms) - 1))]
    print(f"compile, {len(SCHEMAS)} schemas x {rounds}: median {statistics.median(ms):.2f} ms, p95 {p95:.2f} ms, max {ms[-1]:.2f} ms")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else None, int(sys.argv[2]) if len(sys.argv) > 2 else 20)

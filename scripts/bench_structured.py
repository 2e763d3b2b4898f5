"""Structured-output costs on a model's tokenizer: the one-off llguidance tokenizer build, the compile
time (what ``submit`` adds to a request) of every test schema, and the per-token cost of the logits
processor (mask computed and applied to a vocabulary-wide row) over a valid answer to
scripts/bench_schema.json.

    PYTHONPATH=. .venv/bin/python scripts/bench_structured.py [MODEL] [ROUNDS]
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

import mlx.core as mx

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
    print(f"compile, {len(SCHEMAS)} schemas x {rounds}: median {statistics.median(ms):.2f} ms, p95 {_p95(ms):.2f} ms, max {ms[-1]:.2f} ms")
    print(f"per-token processor: {_per_token(tokenizer)}")


def _per_token(tokenizer, rounds: int = 5) -> str:
    schema = json.loads((Path(__file__).parent / "bench_schema.json").read_text())
    answer = json.dumps({"people": [{"name": f"Person{i}", "age": 20 + i, "role": "engineer"} for i in range(24)]})
    tokens = tokenizer.encode(answer, add_special_tokens=False)
    logits = mx.zeros((1, len(tokenizer._tokenizer)))
    seconds = []
    for _ in range(rounds):
        request = ChatRequest([Message("user", "x")], response_format=Grammar("json", "schema", schema))
        processor = constraints.compile(request, OutputPlan(), tokenizer)
        previous = mx.array([0])  # the first call consumes nothing
        for token in tokens:
            started = time.perf_counter()
            mx.eval(processor(previous, logits))
            seconds.append(time.perf_counter() - started)
            previous = mx.array([token])
    us = sorted(s * 1e6 for s in seconds)
    return f"median {statistics.median(us):.0f} us, p95 {_p95(us):.0f} us over {len(us)} tokens"


def _p95(values: list[float]) -> float:
    return values[int(0.95 * (len(values) - 1))]


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else None, int(sys.argv[2]) if len(sys.argv) > 2 else 20)

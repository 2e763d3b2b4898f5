#!/usr/bin/env python3
"""Cost per token of turning generated text into events (stop strings, reasoning split, tool-call parsing).

Feeds a long reply (think blocks, paragraphs, tool calls) token by token, as the engine does, with
the default model's tokenizer: plain routing against reasoning + tool-call routing.

    .venv/bin/python scripts/bench_output.py [MODEL]
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

REPLY = (
    "<think>\nLet me reason about this carefully, step by step, before answering.\n</think>\n\n"
    + "The answer is a fairly long paragraph of plain text that goes on. " * 30
    + '\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris", "days": 3}}\n</tool_call>'
) * 10


def main(model: str | None = None) -> None:
    from mlxcli.engine import platform

    platform.configure(True)
    from mlxcli.engine.formats import OutputFormat, ThinkFormat, tool_format
    from mlxcli.engine.output import OutputPlan, OutputProcessor
    from mlxcli.models import resolve_model
    from mlx_lm.utils import load_tokenizer

    tokenizer = load_tokenizer(resolve_model(model).path)
    pieces = [tokenizer.decode([t]) for t in tokenizer.encode(REPLY)]
    plans = {
        "plain": OutputPlan(),
        "reasoning + tool calls": OutputPlan(OutputFormat(thinking=ThinkFormat("<think>", "</think>")), tools=tool_format("json_tools")),
    }
    for name, plan in plans.items():
        best = float("inf")
        for _ in range(5):
            processor = OutputProcessor(["STOP"], plan)
            started = time.perf_counter()
            for piece in pieces:
                processor.feed(piece)
            processor.finish()
            best = min(best, time.perf_counter() - started)
        print(f"{name:>24}: {best * 1e6 / len(pieces):5.1f} µs/token ({len(pieces)} tokens)")


if __name__ == "__main__":
    main(*sys.argv[1:])

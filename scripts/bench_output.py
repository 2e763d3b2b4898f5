#!/usr/bin/env python3
"""Cost per token of turning generated text into events (stop strings, reasoning split, tool-call parsing).

Feeds a long reply (reasoning, paragraphs, tool calls) token by token, as the engine does, through
three plans: plain routing, ``<think>`` reasoning + ``json_tools`` calls, and gpt-oss's Harmony
(the same reasoning, text and calls as channels and headers). The default model's tokenizer gets
the markers of both formats as single tokens (as Qwen's and gpt-oss's vocabularies have them), so
the formats are compared on the same footing. The plans take turns, ``ROUNDS`` times, each in every
position; each line gives the best and the median round, in CPU time (on a shared machine, wall time
counts other processes too).

    .venv/bin/python scripts/bench_output.py [MODEL] [ROUNDS]
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

THOUGHT = "Let me reason about this carefully, step by step, before answering."
PARAGRAPH = "The answer is a fairly long paragraph of plain text that goes on. " * 30
ARGUMENTS = '{"city": "Paris", "days": 3}'
THINK_REPLY = (f"<think>\n{THOUGHT}\n</think>\n\n{PARAGRAPH}\n<tool_call>\n" + '{"name": "get_weather", "arguments": ' + ARGUMENTS + "}\n</tool_call>") * 10
HARMONY_REPLY = (
    f"<|channel|>analysis<|message|>{THOUGHT}<|end|><|start|>assistant<|channel|>commentary<|message|>{PARAGRAPH}<|end|>"
    f"<|start|>assistant<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>{ARGUMENTS}<|call|>"
    "<|start|>assistant"
) * 10
THINK_MARKERS = ["<think>", "</think>", "<tool_call>", "</tool_call>"]
HARMONY_MARKERS = ["<|start|>", "<|end|>", "<|message|>", "<|channel|>", "<|constrain|>", "<|return|>", "<|call|>"]


def marked_tokenizer(model_dir: Path, into: Path):
    """The model's tokenizer with both formats' markers added as tokens."""
    from mlx_lm.utils import load_tokenizer
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    tokenizer.add_tokens(THINK_MARKERS)
    tokenizer.add_special_tokens({"additional_special_tokens": HARMONY_MARKERS})
    tokenizer.save_pretrained(into)
    return load_tokenizer(into)


def main(model: str | None = None, rounds: str = "7") -> None:
    from mlxcli.engine import platform

    platform.configure(True)
    from mlxcli.engine.formats import OutputFormat, ThinkFormat, harmony_format, tool_format
    from mlxcli.engine.output import OutputPlan, OutputProcessor
    from mlxcli.models import resolve_model

    with tempfile.TemporaryDirectory() as scratch:
        tokenizer = marked_tokenizer(resolve_model(model).path, Path(scratch))
    harmony = harmony_format()
    cases = {
        "plain": (OutputPlan(), THINK_REPLY),
        "<think> + json_tools": (OutputPlan(OutputFormat(thinking=ThinkFormat("<think>", "</think>")), tools=tool_format("json_tools")), THINK_REPLY),
        "harmony": (OutputPlan(harmony, tools=harmony.tools, initial=harmony.initial), HARMONY_REPLY),
    }
    pieces = {name: [tokenizer.decode([t]) for t in tokenizer.encode(text, add_special_tokens=False)] for name, (_, text) in cases.items()}
    times: dict[str, list[float]] = {name: [] for name in cases}
    names = list(cases)
    for n in range(int(rounds)):
        for name in names[n % len(names) :] + names[: n % len(names)]:  # interleaved, each in every position
            processor = OutputProcessor(["STOP"], cases[name][0])
            started = time.process_time()  # CPU time: what other processes take of the cores is not counted
            for piece in pieces[name]:
                processor.feed(piece)
            processor.finish()
            times[name].append((time.process_time() - started) * 1e6 / len(pieces[name]))
    for name, runs in times.items():
        print(f"{name:>22}: best {min(runs):5.2f} µs/token, median {statistics.median(runs):5.2f} ({len(pieces[name])} tokens)")
    ratio = statistics.median(times["harmony"]) / statistics.median(times["<think> + json_tools"])
    print(f"{'harmony ÷ <think>':>22}: ×{ratio:.2f} (median rounds)")


if __name__ == "__main__":
    main(*sys.argv[1:])

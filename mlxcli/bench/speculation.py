"""The speculation scenarios: ``mlxcli bench --scenario edit`` (a file sent back with one rename: what
prompt lookup is for) and ``--scenario prose`` (a story continued: nothing repeats, and speculation
must not lose there).

Per level of concurrent clients (edit: 1 and 4; prose: 1 and 8), each run sends every target the same
requests (greedy; fresh seeds each run, so no prompt cache helps), targets interleaved: aggregate
output tok/s, each request's decode tok/s, and how many answers are the first target's, character for
character. In-process the engine speculates (``--speculative``, ``--draft-model``; ngram unless told)
and is measured twice, its requests kept from speculating first (``engine (plain)``), then as it is:
the same weights, the same process, one engine. Its speculation counters (proposed, accepted) are read
around each target's runs.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass, field, replace
from typing import Sequence

from mlxcli.bench.prompts import PromptSet
from mlxcli.bench.scenarios import LevelRun, Tick, WARMUP_SEED, _nothing, error_summary, make_request, run_level
from mlxcli.bench.stats import summarize
from mlxcli.bench.targets import RequestResult, Target, Watch
from mlxcli.core.request import ChatRequest, Message, Sampling

FILE_LINES = 60
NOUNS = ("order", "invoice", "parcel", "ticket", "booking", "account", "sample", "shipment")
VERBS = ("sum", "weigh", "scale", "count", "rate", "score", "rank", "price", "check", "audit")


def edit_file(seed: int, lines: int = FILE_LINES) -> tuple[str, str, str]:
    """A Python file of about ``lines`` lines that calls one function throughout: (file, its name, the new name)."""
    rng = random.Random(seed)
    noun = rng.choice(NOUNS)
    kind, old, new = noun.capitalize(), f"{noun}_total", f"{noun}_amount"
    text = [
        f'"""Helpers for {noun}s: totals, discounts and reports."""',
        "",
        "from dataclasses import dataclass",
        "",
        "",
        "@dataclass",
        f"class {kind}:",
        "    name: str",
        "    quantity: int",
        "    price: float",
        "",
        "",
        f"def {old}(item: {kind}) -> float:",
        "    return item.quantity * item.price",
        "",
    ]
    for i in itertools.count():
        if len(text) >= lines - 2:
            break
        verb, factor, digits = rng.choice(VERBS), rng.randint(2, 97), rng.randint(1, 4)
        text += [
            "",
            f"def {verb}_{noun}s_{i}(items: list[{kind}]) -> float:",
            "    total = 0.0",
            "    for item in items:",
            f"        total += {old}(item) * {factor / 10:g}",
            f"    return round(total, {digits})",
        ]
    return "\n".join(text) + "\n", old, new


def edit_request(seed: int, gen_tokens: int, lines: int = FILE_LINES) -> ChatRequest:
    source, old, new = edit_file(seed, lines)
    text = (f"Rename the function `{old}` to `{new}` everywhere in this file. Reply with the complete updated file "
            f"in one ```python code block and nothing else.\n\n```python\n{source}```")
    return ChatRequest(messages=[Message("user", text)], sampling=Sampling(temperature=0.0, max_tokens=gen_tokens))


@dataclass
class Unspeculated:
    """An engine target whose requests are kept from speculating: the same engine, measured without."""

    inner: Target
    name: str = ""
    kind: str = "engine"

    def __post_init__(self) -> None:
        self.name = self.name or f"{self.inner.name} (plain)"

    def run(self, request: ChatRequest, watch: Watch | None = None) -> RequestResult:
        return self.inner.run(replace(request, speculate=False), watch)

    def cpu_seconds(self) -> float | None:
        return self.inner.cpu_seconds()

    def describe(self) -> dict:
        return {**self.inner.describe(), "name": self.name, "speculation": "off"}

    def close(self) -> None:
        pass


@dataclass
class SpecCell:
    target: str
    workload: str
    clients: int
    gen_tokens: int
    runs: list[LevelRun] = field(default_factory=list)
    same: int = 0  # answers identical to the first target's
    compared: int = 0
    proposed: int = 0  # the engine's speculation counters over this target's runs (in-process)
    accepted: int = 0

    @property
    def results(self) -> list[RequestResult]:
        return [r for run in self.runs for r in run.results]

    def to_json(self) -> dict:
        results = self.results
        ok = [r for r in results if r.ok]
        return {
            "target": self.target,
            "workload": self.workload,
            "clients": self.clients,
            "gen_tokens": self.gen_tokens,
            "prompt_tokens": summarize(r.prompt_tokens for r in ok if r.prompt_tokens is not None).to_json(),
            "runs": len(self.runs),
            "requests": len(results),
            "errors": len(results) - len(ok),
            "error_messages": error_summary(results),
            "aggregate_tps": summarize(run.aggregate_tps for run in self.runs).to_json(),
            "decode_tps": summarize(r.decode_tps for r in ok).to_json(),
            "tokens_per_request": summarize(r.output_tokens for r in ok).to_json(),
            "same_answers": None if not self.compared else f"{self.same}/{self.compared}",
            "proposed": self.proposed,
            "accepted": self.accepted,
            "acceptance": self.accepted / self.proposed if self.proposed else None,
        }


def run(
    targets: Sequence[Target],
    workload: str,
    prompts: PromptSet,
    *,
    clients: Sequence[int],
    gen_tokens: int,
    prompt_tokens: int,
    repeat: int,
    warmup: int,
    file_lines: int = FILE_LINES,
    tick: Tick = _nothing,
) -> list[SpecCell]:
    def request(seed: int) -> ChatRequest:
        if workload == "edit":
            return edit_request(prompts.first_seed + seed, gen_tokens, file_lines)
        return make_request(prompts.get(prompt_tokens, seed), gen_tokens, ignore_eos=True)

    for target in targets:
        for i in range(warmup):
            target.run(request(WARMUP_SEED + i))
            tick()
    cells = {(t.name, c): SpecCell(t.name, workload, c, gen_tokens) for t in targets for c in clients}
    seeds = itertools.count()
    for c in clients:
        for _ in range(repeat):
            batch = [request(next(seeds)) for _ in range(c)]
            first: list[str] | None = None
            for target in targets:
                cell = cells[(target.name, c)]
                before = _counters(target)
                level = run_level(target, batch, c, tick)
                after = _counters(target)
                cell.proposed += after[0] - before[0]
                cell.accepted += after[1] - before[1]
                cell.runs.append(level)
                texts = [r.text if r.ok else None for r in level.results]
                if first is None:
                    first = texts
                    continue
                cell.compared += len(texts)
                cell.same += sum(a is not None and a == b for a, b in zip(texts, first))
    return list(cells.values())


def _counters(target: Target) -> tuple[int, int]:
    """The in-process engine's speculation counters (proposed, accepted), all models together."""
    inner = getattr(target, "inner", target)
    engine = getattr(inner, "engine", None)
    if engine is None:
        return 0, 0
    models = engine.stats().get("speculation", {}).values()
    return sum(m["proposed"] for m in models), sum(m["accepted"] for m in models)

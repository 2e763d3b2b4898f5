"""The three benchmark scenarios and their results.

- engine matrix: prompt lengths × generation lengths on the engine in-process, timed by the
  engine itself (prefill, decode, time to first token, peak memory);
- load: levels of concurrent streaming clients against one or more targets, interleaved;
- turns: one conversation growing turn by turn (where prompt caching shows).

Targets are always interleaved (A, B, A, B, ... rather than A, A, B, B) so that a machine
whose speed drifts (other work, heat) does not favour one of them.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Callable, Sequence

from mlxcli.bench.prompts import PromptSet
from mlxcli.bench.stats import Summary, summarize
from mlxcli.bench.targets import EngineTarget, RequestResult, Target
from mlxcli.core.request import ChatRequest, Message, Sampling

Tick = Callable[[], None]  # called once per finished request (progress display)
WARMUP_SEED = 1_000_000  # warm-up prompts never repeat a measured one


def _nothing() -> None:
    pass


def make_request(messages: list[Message], gen_tokens: int, *, ignore_eos: bool = False) -> ChatRequest:
    """Greedy sampling: every target gets the same request and, with the same weights, the same answer."""
    return ChatRequest(messages=list(messages), sampling=Sampling(temperature=0.0, max_tokens=gen_tokens, ignore_eos=ignore_eos))


def error_summary(results: Sequence[RequestResult], limit: int = 3) -> list[str]:
    """The most frequent error messages, with their counts."""
    counts = Counter(r.error for r in results if r.error)
    return [f"{n}× {message}" for message, n in counts.most_common(limit)]


def token_source(results: Sequence[RequestResult]) -> str | None:
    sources = {r.token_source for r in results if r.ok}
    return None if not sources else sources.pop() if len(sources) == 1 else "mixed"


# ---- engine matrix ---------------------------------------------------------------


@dataclass
class MatrixCell:
    target: str
    prompt_tokens: int
    gen_tokens: int
    runs: list[RequestResult] = field(default_factory=list)
    peak_memory_gb: float | None = None

    @property
    def ok_runs(self) -> list[RequestResult]:
        return [r for r in self.runs if r.ok and r.timings is not None]

    def to_json(self) -> dict:
        ok = self.ok_runs
        return {
            "target": self.target,
            "prompt_tokens": self.prompt_tokens,
            "gen_tokens": self.gen_tokens,
            "runs": len(self.runs),
            "errors": len(self.runs) - len(ok),
            "error_messages": error_summary(self.runs),
            "prompt_tokens_measured": summarize(r.prompt_tokens for r in ok).to_json(),
            "output_tokens": summarize(r.output_tokens for r in ok).to_json(),
            "prefill_tps": summarize(r.prompt_tokens / r.timings.prefill for r in ok if r.timings.prefill > 0).to_json(),
            "decode_tps": summarize(
                (r.output_tokens - 1) / r.timings.decode for r in ok if r.output_tokens > 1 and r.timings.decode > 0
            ).to_json(),
            "ttft_s": summarize(r.timings.queued + r.timings.prefill for r in ok).to_json(),
            "peak_memory_gb": self.peak_memory_gb,
        }


def engine_matrix(
    target: EngineTarget,
    prompts: PromptSet,
    *,
    prompt_lens: Sequence[int],
    gen_lens: Sequence[int],
    repeat: int,
    warmup: int,
    tick: Tick = _nothing,
) -> list[MatrixCell]:
    """Every (prompt, generation) pair: ``warmup`` unmeasured runs, then ``repeat`` measured ones.

    End-of-sequence is ignored so that each run generates exactly the asked number of tokens.
    """
    cells = []
    seeds = itertools.count()
    for p, g in itertools.product(prompt_lens, gen_lens):
        for _ in range(warmup):
            target.run(make_request(prompts.get(p, WARMUP_SEED + next(seeds)), g, ignore_eos=True))
            tick()
        cell = MatrixCell(target.name, p, g)
        target.engine.reset_peak_memory()
        for _ in range(repeat):
            cell.runs.append(target.run(make_request(prompts.get(p, next(seeds)), g, ignore_eos=True)))
            tick()
        peaks = [r.timings.peak_memory_gb for r in cell.ok_runs]
        cell.peak_memory_gb = max(peaks) if peaks else None
        cells.append(cell)
    return cells


# ---- load -------------------------------------------------------------------------


@dataclass
class LevelRun:
    """One burst of requests handled by ``clients`` concurrent clients."""

    results: list[RequestResult]
    wall: float  # from the first request sent to the last one finished
    server_cpu_s: float | None = None  # CPU seconds the server used meanwhile (a local server's, from /proc)

    @property
    def tokens(self) -> int:
        return sum(r.output_tokens for r in self.results if r.ok)

    @property
    def aggregate_tps(self) -> float | None:
        return self.tokens / self.wall if self.wall > 0 and self.tokens else None

    @property
    def cpu_per_token(self) -> float | None:
        """The server's CPU seconds per output token (all its threads: HTTP, engine, MLX, BLAS)."""
        return self.server_cpu_s / self.tokens if self.server_cpu_s is not None and self.tokens else None


@dataclass
class LoadCell:
    target: str
    clients: int
    prompt_tokens: int
    gen_tokens: int
    runs: list[LevelRun] = field(default_factory=list)

    @property
    def results(self) -> list[RequestResult]:
        return [r for run in self.runs for r in run.results]

    def key(self) -> tuple[int, int, int]:
        return (self.prompt_tokens, self.gen_tokens, self.clients)

    def summaries(self) -> dict[str, Summary]:
        ok = [r for r in self.results if r.ok]
        return {
            "aggregate_tps": summarize(run.aggregate_tps for run in self.runs),
            "decode_tps": summarize(r.decode_tps for r in ok),
            "itl_s": summarize(gap for r in ok for gap in r.gaps),
            "server_cpu_s_per_token": summarize(run.cpu_per_token for run in self.runs),
            "ttft_s": summarize(r.ttft for r in ok),
            "latency_s": summarize(r.latency for r in ok),
            "tokens_per_request": summarize(r.output_tokens for r in ok),
            "prompt_tokens_reported": summarize(r.prompt_tokens for r in ok),
            "cached_tokens_reported": summarize(r.cached_tokens for r in ok),
        }

    def to_json(self) -> dict:
        results = self.results
        ok = [r for r in results if r.ok]
        return {
            "target": self.target,
            "clients": self.clients,
            "prompt_tokens": self.prompt_tokens,
            "gen_tokens": self.gen_tokens,
            "runs": len(self.runs),
            "requests": len(results),
            "errors": len(results) - len(ok),
            "error_messages": error_summary(results),
            "token_source": token_source(results),
            "output_tokens": sum(r.output_tokens for r in ok),
            **{name: s.to_json() for name, s in self.summaries().items()},
        }


def run_level(target: Target, requests: Sequence[ChatRequest], clients: int, tick: Tick = _nothing) -> LevelRun:
    """Send ``requests`` through ``clients`` threads, each taking the next request when it is done."""
    results: list[RequestResult | None] = [None] * len(requests)
    order = itertools.count()
    lock = threading.Lock()

    def client() -> None:
        while True:
            with lock:
                i = next(order)
            if i >= len(requests):
                return
            results[i] = target.run(requests[i])
            tick()

    threads = [threading.Thread(target=client, daemon=True) for _ in range(min(clients, len(requests)))]
    cpu_before = target.cpu_seconds()
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    cpu_after = target.cpu_seconds()
    cpu = cpu_after - cpu_before if cpu_before is not None and cpu_after is not None else None
    return LevelRun([r for r in results if r is not None], wall, cpu)


def load(
    targets: Sequence[Target],
    prompts: PromptSet,
    *,
    clients: Sequence[int],
    prompt_lens: Sequence[int],
    gen_lens: Sequence[int],
    requests: int | None,
    repeat: int,
    warmup: int,
    tick: Tick = _nothing,
) -> list[LoadCell]:
    """Each level sends ``requests`` (default: one per client) ``repeat`` times, targets interleaved."""
    for target in targets:
        for i in range(warmup):
            target.run(make_request(prompts.get(prompt_lens[0], WARMUP_SEED + i), gen_lens[0]))
            tick()
    cells: dict[tuple[str, int, int, int], LoadCell] = {}
    seeds = itertools.count()
    for (p, g), c in itertools.product(itertools.product(prompt_lens, gen_lens), clients):
        for _ in range(repeat):
            batch = [make_request(prompts.get(p, next(seeds)), g) for _ in range(requests or c)]
            for target in targets:
                cell = cells.setdefault((target.name, p, g, c), LoadCell(target.name, c, p, g))
                cell.runs.append(run_level(target, batch, c, tick))
    return list(cells.values())


# ---- turns ------------------------------------------------------------------------


@dataclass
class TurnCell:
    target: str
    turn: int  # 1-based
    results: list[RequestResult] = field(default_factory=list)

    def summaries(self) -> dict[str, Summary]:
        ok = [r for r in self.results if r.ok]
        return {
            "prompt_tokens": summarize(r.prompt_tokens for r in ok),
            "cached_tokens_reported": summarize(r.cached_tokens for r in ok),
            "ttft_s": summarize(r.ttft for r in ok),
            "decode_tps": summarize(r.decode_tps for r in ok),
            "tokens_per_request": summarize(r.output_tokens for r in ok),
        }

    def to_json(self) -> dict:
        ok = [r for r in self.results if r.ok]
        return {
            "target": self.target,
            "turn": self.turn,
            "requests": len(self.results),
            "errors": len(self.results) - len(ok),
            "error_messages": error_summary(self.results),
            "token_source": token_source(self.results),
            **{name: s.to_json() for name, s in self.summaries().items()},
        }


def turns(
    targets: Sequence[Target],
    prompts: PromptSet,
    *,
    turns: int,
    prompt_tokens: int,
    gen_tokens: int,
    repeat: int,
    warmup: int,
    images_after_first: bool = True,
    tick: Tick = _nothing,
) -> list[TurnCell]:
    """``repeat`` conversations per target; each turn adds a user message of about ``prompt_tokens``
    tokens to the history (earlier answers included) and asks for ``gen_tokens`` more. With images
    (``PromptSet.image_size``), every turn's message has one, or (not ``images_after_first``) the first's only.

    Prompt tokens are the server's count when it reports one, else the local tokenizer's.
    A failed turn ends that conversation.
    """
    for target in targets:
        for i in range(warmup):
            target.run(make_request(prompts.get(prompt_tokens, WARMUP_SEED + i), gen_tokens))
            tick()
    cells = {(t.name, k): TurnCell(t.name, k + 1) for t in targets for k in range(turns)}
    for rep in range(repeat):
        for target in targets:
            conversation: list[Message] = []
            for k in range(turns):
                messages = prompts.get(prompt_tokens, rep * turns + k)
                if k and not images_after_first:
                    messages = [replace(m, images=[]) for m in messages]
                conversation += messages
                request = make_request(conversation, gen_tokens)
                result = target.run(request)
                if result.ok and result.prompt_tokens is None:
                    result.prompt_tokens = prompts.count(request)
                cells[(target.name, k)].results.append(result)
                tick()
                if not result.ok:
                    for _ in range(turns - k - 1):  # the turns this conversation will not have
                        tick()
                    break
                conversation.append(Message("assistant", result.text))
    return list(cells.values())

"""The coding-agent scenario (``mlxcli bench --scenario agent``): what a long prompt does to everything else.

An agent sends a long main prompt and, at the same moment, short side requests (a title, a summary),
while another session's answer is streaming. Each run, per target (targets interleaved):

1. alone: the short request on its own (its whole time), then the long prompt on its own (its time to
   first token);
2. together: a stream starts and keeps answering; once its first token is out the long prompt is sent,
   and ``side_delay`` seconds later the short request; when both are answered the stream is stopped.

It reports the short request's slowdown (together ÷ alone), the long prompt's (time to first token,
together ÷ alone), and the stream's inter-token gaps while the long prompt was being read (p50, p95).
Prompts never repeat (fresh seeds), so no prompt cache helps either side.
"""

from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass, field
from typing import Sequence

from mlxcli.bench.prompts import PromptSet
from mlxcli.bench.scenarios import Tick, _nothing, error_summary, make_request
from mlxcli.bench.stats import percentile, ratio, summarize
from mlxcli.bench.targets import RequestResult, Target, Watch

STREAM_PROMPT = 128  # tokens of the running stream's prompt
STREAM_TOKENS = 100_000  # it is stopped once the rest is answered


@dataclass
class AgentCell:
    target: str
    long_tokens: int
    prompt_tokens: int  # the short request's
    gen_tokens: int  # the short request's answer
    short_alone: list[RequestResult] = field(default_factory=list)
    short_together: list[RequestResult] = field(default_factory=list)
    long_alone: list[RequestResult] = field(default_factory=list)
    long_together: list[RequestResult] = field(default_factory=list)
    gaps: list[float] = field(default_factory=list)  # the stream's, while the long prompt was read

    @property
    def results(self) -> list[RequestResult]:
        return self.short_alone + self.short_together + self.long_alone + self.long_together

    def to_json(self) -> dict:
        def seconds(results: list[RequestResult], ttft: bool = False) -> dict:
            return summarize(r.ttft if ttft else r.latency for r in results if r.ok).to_json()

        short = (seconds(self.short_alone), seconds(self.short_together))
        long = (seconds(self.long_alone, ttft=True), seconds(self.long_together, ttft=True))
        results = self.results
        return {
            "target": self.target,
            "long_tokens": self.long_tokens,
            "prompt_tokens": self.prompt_tokens,
            "gen_tokens": self.gen_tokens,
            "errors": sum(not r.ok for r in results),
            "error_messages": error_summary(results),
            "short_alone_s": short[0],
            "short_together_s": short[1],
            "short_slowdown": ratio(short[1]["median"], short[0]["median"]),
            "long_ttft_alone_s": long[0],
            "long_ttft_together_s": long[1],
            "long_slowdown": ratio(long[1]["median"], long[0]["median"]),
            "stream_gap_p50_s": percentile(self.gaps, 50) if self.gaps else None,
            "stream_gap_p95_s": percentile(self.gaps, 95) if self.gaps else None,
            "stream_gap_max_s": max(self.gaps) if self.gaps else None,
        }


def agent(
    targets: Sequence[Target],
    prompts: PromptSet,
    *,
    long_tokens: int,
    prompt_tokens: int,
    gen_tokens: int,
    repeat: int,
    warmup: int,
    side_delay: float = 1.0,
    tick: Tick = _nothing,
) -> list[AgentCell]:
    seeds = itertools.count()

    def request(tokens: int, gen: int):
        return make_request(prompts.get(tokens, next(seeds)), gen, ignore_eos=True)

    for target in targets:
        for _ in range(warmup):
            target.run(request(prompt_tokens, gen_tokens))
            tick()
    cells = {t.name: AgentCell(t.name, long_tokens, prompt_tokens, gen_tokens) for t in targets}
    for _ in range(repeat):
        for target in targets:
            cell = cells[target.name]
            cell.short_alone.append(target.run(request(prompt_tokens, gen_tokens)))
            cell.long_alone.append(target.run(request(long_tokens, 1)))
            _together(target, cell, request(STREAM_PROMPT, STREAM_TOKENS), request(long_tokens, 1),
                      request(prompt_tokens, gen_tokens), side_delay)
            tick()
    return list(cells.values())


def _together(target: Target, cell: AgentCell, stream_request, long_request, short_request, side_delay: float) -> None:
    watch = Watch()
    box: dict[str, RequestResult] = {}

    def run(name: str, req, watched: Watch | None = None) -> None:
        box[name] = target.run(req, watched)

    stream = threading.Thread(target=run, args=("stream", stream_request, watch))
    stream.start()
    watch.started.wait()
    long = threading.Thread(target=run, args=("long", long_request))
    long.start()
    long.join(timeout=side_delay)
    run("short", short_request)
    long.join()
    watch.stop.set()
    stream.join()
    cell.short_together.append(box["short"])
    cell.long_together.append(box["long"])
    streamed, long_result = box["stream"], box["long"]
    if long_result.first_output is not None:
        times = [t for t in streamed.arrivals if long_result.started <= t <= long_result.first_output]
        cell.gaps += [b - a for a, b in zip(times, times[1:])]

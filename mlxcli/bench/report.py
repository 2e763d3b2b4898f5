"""A benchmark's results: the JSON document (schema ``mlxcli.bench/1``) and the rich tables."""

from __future__ import annotations

import datetime as _dt
import os
import platform
from dataclasses import dataclass, field
from typing import Any, Sequence

from rich import box
from rich.console import Group
from rich.table import Table
from rich.text import Text

from mlxcli.bench.agent import AgentCell
from mlxcli.bench.embeddings import BatchCell
from mlxcli.bench.scenarios import LoadCell, MatrixCell, TurnCell
from mlxcli.bench.speculation import SpecCell
from mlxcli.bench.stats import ratio

SCHEMA = "mlxcli.bench/1"

# Per scenario: the metrics compared with the first target ("vs_first" in the JSON): a summary's median,
# or another of its statistics as (summary, statistic).
COMPARED = {
    "load": ("aggregate_tps", "decode_tps", "ttft_s", "latency_s", "itl_s", ("itl_p95_s", "itl_s", "p95"),
             "server_cpu_s_per_token"),
    "turns": ("ttft_s", "decode_tps"),
    "edit": ("aggregate_tps", "decode_tps"),
    "prose": ("aggregate_tps", "decode_tps"),
}


def _statistic(metric) -> tuple[str, str, str]:
    """(name in vs_first, summary, statistic)."""
    return metric if isinstance(metric, tuple) else (metric, metric, "median")


@dataclass
class Report:
    scenario: str  # "engine" | "load" | "turns" | "embeddings" | "agent" | "edit" | "prose"
    settings: dict[str, Any]
    targets: list[dict[str, Any]]
    cells: Sequence[MatrixCell | LoadCell | TurnCell | BatchCell | AgentCell | SpecCell]
    notes: list[str] = field(default_factory=list)
    created: str = field(default_factory=lambda: _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))

    def to_json(self) -> dict[str, Any]:
        from mlxcli import __version__

        rows = [cell.to_json() for cell in self.cells]
        if self.scenario in COMPARED:
            _add_ratios(rows, self.scenario, self.targets[0]["name"])
        return {
            "schema": SCHEMA,
            "mlxcli_version": __version__,
            "created": self.created,
            "machine": {
                "system": platform.system(),
                "machine": platform.machine(),
                "cpus": os.cpu_count(),
                "python": platform.python_version(),
            },
            "scenario": self.scenario,
            "settings": self.settings,
            "targets": self.targets,
            "results": rows,
            "notes": self.notes,
        }


def _group_key(row: dict[str, Any], scenario: str) -> tuple:
    if scenario == "turns":
        return (row["turn"],)
    if scenario in ("edit", "prose"):
        return (row["clients"],)
    return (row["prompt_tokens"], row["gen_tokens"], row["clients"])


def _add_ratios(rows: list[dict[str, Any]], scenario: str, first: str) -> None:
    """``vs_first``: each median over the first target's median in the same group (null for the first)."""
    reference = {_group_key(r, scenario): r for r in rows if r["target"] == first}
    for row in rows:
        ref = reference.get(_group_key(row, scenario))
        if row["target"] == first or ref is None:
            row["vs_first"] = None
        else:
            row["vs_first"] = {
                name: ratio(row[summary][stat], ref[summary][stat])
                for name, summary, stat in map(_statistic, COMPARED[scenario])
            }


# ---- rendering ----------------------------------------------------------------------


def _num(value: float | None, digits: int = 1) -> str:
    return "–" if value is None else f"{value:,.{digits}f}"


def _seconds(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value * 1000:,.0f} ms" if value < 1 else f"{value:,.2f} s"


def _spread(summary: dict[str, Any], seconds: bool = False) -> Text:
    """The median, then the range of the samples (same unit, in grey) when there are several."""
    median, low, high = summary["median"], summary["min"], summary["max"]
    if median is None:
        return Text("–")
    if seconds:
        scale, digits, unit = (1000, 0, " ms") if median < 1 else (1, 2, " s")
    else:
        scale, digits, unit = 1, 1, ""
    text = Text(f"{median * scale:,.{digits}f}{unit}")
    if summary["n"] > 1 and low != high:
        text.append(f" {low * scale:,.{digits}f}–{high * scale:,.{digits}f}", style="dim")
    return text


def _milliseconds(value: float | None) -> str:
    return "–" if value is None else f"{value * 1000:,.1f}"


def _times(value: float | None) -> str:
    return "–" if value is None else f"×{value:.2f}"


def _target_line(t: dict[str, Any]) -> str:
    if t["kind"] == "engine":
        fast = "on" if t.get("fast_path") else "off"
        return f"{t['name']}: {t['model']} in-process, {t.get('dtype')}, CPU fast path {fast}"
    return f"{t['name']}: {t['api']} API, model {t['model']!r}"


def render(doc: dict[str, Any]) -> Group:
    """The report as rich renderables: settings, one table, notes."""
    s = doc["settings"]
    header = Text.assemble(
        ("mlxcli bench", "bold"),
        f" — {doc['scenario']}; repeat {s['repeat']}, warm-up {s['warmup']}; "
        f"{doc['machine']['system']} {doc['machine']['machine']}, {doc['machine']['cpus']} CPUs\n",
        "\n".join(_target_line(t) for t in doc["targets"]),
    )
    tables = {"engine": _engine_table, "load": _load_table, "turns": _turns_table, "embeddings": _embeddings_table,
              "agent": _agent_table, "edit": _speculation_table, "prose": _speculation_table}
    table = tables[doc["scenario"]](doc)
    parts: list[Any] = [header, table]
    notes = list(doc["notes"])
    for row in doc["results"]:
        for message in row["error_messages"]:
            notes.append(f"{row['target']}: {message}")
    if notes:
        parts.append(Text("\n".join(notes), style="yellow"))
    return Group(*parts)


def _column(table: Table, name: str) -> None:
    if name == "target":
        table.add_column(name, no_wrap=True)
    else:
        table.add_column(name, justify="right")


def _engine_table(doc: dict[str, Any]) -> Table:
    table = Table(box=box.SIMPLE_HEAD, title="engine, in-process (median, range)", title_justify="left")
    for name in ("prompt", "gen", "prefill tok/s", "decode tok/s", "TTFT", "peak mem", "errors"):
        table.add_column(name, justify="right")
    for r in doc["results"]:
        peak = r["peak_memory_gb"]
        table.add_row(
            str(r["prompt_tokens"]), str(r["gen_tokens"]),
            _spread(r["prefill_tps"]), _spread(r["decode_tps"]), _spread(r["ttft_s"], seconds=True),
            "–" if peak is None else f"{peak:.2f} GB", str(r["errors"]),
        )
    return table


def _load_table(doc: dict[str, Any]) -> Table:
    compare = len(doc["targets"]) > 1
    table = Table(box=box.SIMPLE_HEAD, title=f"load: {doc['settings']['api']} API, streaming (medians, range over runs)", title_justify="left")
    columns = ["target", "tokens in→out", "clients", "errors", "out tok/s", "decode tok/s/req",
               "TTFT p50", "TTFT p95", "ITL p50 ms", "ITL p95 ms", "CPU ms/tok", "tok/req", "cached"]
    if compare:
        columns += ["out ×", "decode ×", "TTFT ×", "ITL p95 ×", "CPU ×"]
    for name in columns:
        _column(table, name)
    for r in doc["results"]:
        counted = "" if r["token_source"] != "chunks" else " (chunks)"
        row = [
            r["target"], f"{r['prompt_tokens']}→{r['gen_tokens']}", str(r["clients"]),
            Text(f"{r['errors']}/{r['requests']}", style="red" if r["errors"] else ""),
            _spread(r["aggregate_tps"]), _num(r["decode_tps"]["median"]),
            _seconds(r["ttft_s"]["median"]), _seconds(r["ttft_s"]["p95"]),
            _milliseconds(r["itl_s"]["median"]), _milliseconds(r["itl_s"]["p95"]),
            _milliseconds(r["server_cpu_s_per_token"]["median"]),
            _num(r["tokens_per_request"]["mean"]) + counted, _num(r["cached_tokens_reported"]["median"], 0),
        ]
        if compare:
            vs = r.get("vs_first") or {}
            row += [_times(vs.get("aggregate_tps")), _times(vs.get("decode_tps")), _times(vs.get("ttft_s")),
                    _times(vs.get("itl_p95_s")), _times(vs.get("server_cpu_s_per_token"))]
        table.add_row(*row)
    return table


def _turns_table(doc: dict[str, Any]) -> Table:
    compare = len(doc["targets"]) > 1
    table = Table(box=box.SIMPLE_HEAD, title="turns: one conversation growing (medians over conversations)", title_justify="left")
    columns = ["target", "turn", "prompt tok", "cached", "TTFT", "decode tok/s", "tok/req", "errors"]
    if compare:
        columns += ["TTFT ×", "decode ×"]
    for name in columns:
        _column(table, name)
    for r in doc["results"]:
        row = [
            r["target"], str(r["turn"]), _num(r["prompt_tokens"]["median"], 0),
            _num(r["cached_tokens_reported"]["median"], 0), _spread(r["ttft_s"], seconds=True),
            _num(r["decode_tps"]["median"]), _num(r["tokens_per_request"]["mean"]),
            Text(str(r["errors"]), style="red" if r["errors"] else ""),
        ]
        if compare:
            vs = r.get("vs_first") or {}
            row += [_times(vs.get("ttft_s")), _times(vs.get("decode_tps"))]
        table.add_row(*row)
    return table


def _embeddings_table(doc: dict[str, Any]) -> Table:
    table = Table(box=box.SIMPLE_HEAD, title="embeddings: one request per run (median, range over runs)", title_justify="left")
    for name in ("target", "batch", "tokens/input", "inputs/s", "tokens/s", "latency", "errors"):
        _column(table, name)
    for r in doc["results"]:
        table.add_row(
            r["target"], str(r["batch"]), str(r["input_tokens"]), _spread(r["inputs_per_s"]), _spread(r["tokens_per_s"]),
            _spread(r["latency_s"], seconds=True), Text(str(r["errors"]), style="red" if r["errors"] else ""),
        )
    return table


def _agent_table(doc: dict[str, Any]) -> Table:
    table = Table(box=box.SIMPLE_HEAD, title="agent: a long prompt, a short request beside it, a stream answering "
                  "(medians over runs)", title_justify="left")
    columns = ["target", "long→short", "short alone", "short beside", "short ×", "long TTFT alone", "long TTFT beside",
               "long ×", "stream gap p50", "p95", "max", "errors"]
    for name in columns:
        _column(table, name)
    for r in doc["results"]:
        table.add_row(
            r["target"], f"{r['long_tokens']}→{r['prompt_tokens']}+{r['gen_tokens']}",
            _spread(r["short_alone_s"], seconds=True), _spread(r["short_together_s"], seconds=True), _times(r["short_slowdown"]),
            _spread(r["long_ttft_alone_s"], seconds=True), _spread(r["long_ttft_together_s"], seconds=True), _times(r["long_slowdown"]),
            _seconds(r["stream_gap_p50_s"]), _seconds(r["stream_gap_p95_s"]), _seconds(r["stream_gap_max_s"]),
            Text(str(r["errors"]), style="red" if r["errors"] else ""),
        )
    return table


def _speculation_table(doc: dict[str, Any]) -> Table:
    title = {"edit": "edit: a file sent back with one rename", "prose": "prose: a story continued"}[doc["scenario"]]
    table = Table(box=box.SIMPLE_HEAD, title=f"{title}, greedy (medians, range over runs)", title_justify="left")
    columns = ["target", "clients", "requests", "errors", "out tok/s", "decode tok/s/req", "tok/req", "same answers",
               "accepted", "out ×", "decode ×"]
    for name in columns:
        _column(table, name)
    for r in doc["results"]:
        vs = r.get("vs_first") or {}
        accepted = "–" if r["acceptance"] is None else f"{r['accepted']:,} ({r['acceptance']:.0%} of {r['proposed']:,})"
        table.add_row(
            r["target"], str(r["clients"]), str(r["requests"]), Text(str(r["errors"]), style="red" if r["errors"] else ""),
            _spread(r["aggregate_tps"]), _spread(r["decode_tps"]), _num(r["tokens_per_request"]["mean"]),
            r["same_answers"] or "–", accepted, _times(vs.get("aggregate_tps")), _times(vs.get("decode_tps")),
        )
    return table

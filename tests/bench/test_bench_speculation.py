"""`mlxcli bench --scenario edit|prose`: the workloads, the scenario against a speculating scripted engine
(measured with its requests kept from speculating, then as it is), the report, and the command."""

from __future__ import annotations

import re

import pytest

from mlxcli.bench import speculation
from mlxcli.bench.prompts import PromptSet
from mlxcli.bench.report import Report, render
from mlxcli.bench.speculation import Unspeculated, edit_file, edit_request
from mlxcli.bench.targets import EngineTarget
from mlxcli.engine.engine import EngineSettings
from mlxcli.engine.speculation.depth import StepCost
from tests.bench.test_bench_cli import bench, bench_process, rows
from tests.support.models import scripted_model

STORY = ("Once upon a time a lighthouse keeper counted the ships that passed, one by one, every night of the year, "
         "and wrote their names in a book that nobody ever read until the winter the lamp went out.")


def respond(prompt: str) -> str:
    """The edit done right (the file sent back renamed, in one code block); a story otherwise."""
    found = re.search(r"Rename the function `(\w+)` to `(\w+)`.*?```python\n(.*?)```", prompt, re.S)
    if found is None:
        return STORY
    old, new, source = found.groups()
    return f"```python\n{source.replace(old, new)}```"


@pytest.fixture
def speculating_engine(tokenizer_dir, run_engine, monkeypatch):
    monkeypatch.setattr(StepCost, "relative", lambda self, proposals: 1.0)  # every proposal verified
    settings = EngineSettings(temperature=0.0, speculative="ngram", prompt_cache_bytes=0)
    return run_engine([scripted_model(tokenizer_dir, respond, settings=settings)], settings)


def test_the_edit_file_calls_one_function_throughout():
    source, old, new = edit_file(3, lines=60)
    assert 58 <= source.count("\n") <= 66
    assert source.count(f"{old}(") >= 8 and new not in source
    compile(source, "edit.py", "exec")  # a real Python file
    assert edit_file(3)[0] == source and edit_file(4)[0] != source
    longer, _, _ = edit_file(3, lines=200)
    assert 198 <= longer.count("\n") <= 206
    request = edit_request(3, gen_tokens=700)
    assert source in request.messages[0].content and request.sampling.temperature == 0.0 and request.sampling.max_tokens == 700


@pytest.mark.parametrize("workload", ["edit", "prose"])
def test_the_scenario_measures_the_engine_without_then_with_speculation(speculating_engine, workload):
    engine = speculating_engine
    targets = [Unspeculated(EngineTarget(engine), name="engine (plain)"), EngineTarget(engine, name="engine +ngram")]
    prompts = PromptSet(engine.count_tokens, first_seed=5)
    ticks = []
    cells = speculation.run(targets, workload, prompts, clients=[1, 3], gen_tokens=400 if workload == "edit" else 24,
                            prompt_tokens=80, repeat=2, warmup=1, file_lines=20, tick=lambda: ticks.append(1))
    assert len(ticks) == 2 * (1 + 2 * (1 + 3))  # per target: a warm-up, then 2 runs of 1 and of 3 requests
    by = {(c.target, c.clients): c.to_json() for c in cells}
    for clients in (1, 3):
        plain, fast = by[("engine (plain)", clients)], by[("engine +ngram", clients)]
        assert plain["requests"] == fast["requests"] == 2 * clients and plain["errors"] == fast["errors"] == 0
        assert fast["same_answers"] == f"{2 * clients}/{2 * clients}" and plain["same_answers"] is None
        assert plain["proposed"] == 0 and plain["acceptance"] is None  # its requests never speculated
        if workload == "edit":
            assert fast["accepted"] > 0 and 0 < fast["acceptance"] <= 1
            assert 60 < fast["tokens_per_request"]["min"] == plain["tokens_per_request"]["min"] < 400  # the whole file came back
        else:
            assert plain["tokens_per_request"]["min"] == fast["tokens_per_request"]["max"] == 24  # ignore_eos: exact
    report = Report(workload, {"repeat": 2, "warmup": 1}, [t.describe() for t in targets], cells)
    doc = report.to_json()
    for row in doc["results"]:
        if row["target"] == "engine +ngram":
            assert set(row["vs_first"]) == {"aggregate_tps", "decode_tps"}
            assert row["vs_first"]["decode_tps"] == pytest.approx(
                row["decode_tps"]["median"] / next(r for r in doc["results"] if r["target"] == "engine (plain)"
                                                   and r["clients"] == row["clients"])["decode_tps"]["median"])
        else:
            assert row["vs_first"] is None
    assert [t["speculation"] for t in doc["targets"][:1]] == ["off"]
    render(doc)  # the table renders


def test_bad_speculation_options_are_clear_errors():
    r = bench("--scenario", "poetry", "--url", "http://127.0.0.1:9", ok=False)
    assert r["exit_code"] == 2 and "not a scenario" in r["output"]
    r = bench("--scenario", "edit", "--speculative", "medusa", ok=False)
    assert r["exit_code"] == 2 and "not a speculation mode" in r["output"]


@pytest.mark.slow  # mlxcli in a subprocess
def test_the_edit_scenario_on_a_tiny_model(tiny_model_dir):
    doc = bench_process("--model", str(tiny_model_dir), "--scenario", "edit", "--clients", "1,2", "--gen-tokens", "12",
                        "--repeat", "1", "--warmup", "0")
    assert doc["scenario"] == "edit" and doc["settings"]["clients"] == [1, 2] and doc["settings"]["file_lines"] == 60
    assert [t["name"] for t in doc["targets"]] == ["engine (plain)", "engine +ngram"]
    assert [(r["target"], r["clients"]) for r in rows(doc)] == [
        ("engine (plain)", 1), ("engine (plain)", 2), ("engine +ngram", 1), ("engine +ngram", 2)]
    for r in rows(doc, "engine +ngram"):
        assert r["errors"] == 0 and r["same_answers"] == f"{r['clients']}/{r['clients']}"
        assert r["tokens_per_request"]["max"] <= 12

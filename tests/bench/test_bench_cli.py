"""`mlxcli bench` end to end: the engine on a tiny model, servers over real HTTP.

Every check compares the report with what was sent: request counts, token counts, errors.
Against servers the command runs in-process (CliRunner); with the engine in-process it runs as
a real `python -m mlxcli bench`, since it then leaves through ``exit_process`` (``os._exit``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from mlxcli.cli import app
from mlxcli.client import NAMES
from mlxcli.engine.engine import EngineSettings, MlxEngine
from tests.support.fake_openai import FakeServer
from tests.support.server import RunningServer
from tests.support.models import scripted_of

REPLY = "alpha beta gamma delta epsilon"


def bench(*args: str, ok: bool = True) -> dict:
    result = CliRunner().invoke(app, ["bench", *args, "--json"])
    if ok:
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)
    return {"exit_code": result.exit_code, "output": result.output}


def bench_process(*args: str, home=None, ok: bool = True) -> dict:
    """`python -m mlxcli bench ... --json` in a process of its own (the engine runs in it)."""
    env = {**os.environ, **({"MLXCLI_HOME": str(home)} if home else {})}
    result = subprocess.run([sys.executable, "-m", "mlxcli", "bench", *args, "--json"], env=env,
                            capture_output=True, text=True, timeout=600)
    if ok:
        assert result.returncode == 0, result.stderr[-3000:]
        return json.loads(result.stdout)
    return {"exit_code": result.returncode, "output": result.stdout + result.stderr}


def rows(doc: dict, target: str | None = None) -> list[dict]:
    return [r for r in doc["results"] if target is None or r["target"] == target]


@pytest.fixture
def scripted_server(scripted_engine, serve):
    engine = scripted_engine(lambda prompt: REPLY)
    return serve(engine)


@pytest.mark.slow  # mlxcli in a subprocess
def test_engine_matrix_on_a_tiny_model(tiny_model_dir):
    doc = bench_process("--model", str(tiny_model_dir), "--prompt-tokens", "60,90", "--gen-tokens", "5,12", "--repeat", "2")
    assert doc["schema"] == "mlxcli.bench/1" and doc["scenario"] == "engine"
    assert [t["kind"] for t in doc["targets"]] == ["engine"]
    assert [(r["prompt_tokens"], r["gen_tokens"]) for r in rows(doc)] == [(60, 5), (60, 12), (90, 5), (90, 12)]
    for r in rows(doc):
        assert r["runs"] == 2 and r["errors"] == 0
        # exact prompts, and end-of-sequence ignored: every run generated exactly what was asked
        assert r["prompt_tokens_measured"] == {**r["prompt_tokens_measured"], "n": 2, "min": r["prompt_tokens"], "max": r["prompt_tokens"]}
        assert r["output_tokens"]["min"] == r["output_tokens"]["max"] == r["gen_tokens"]
        for metric in ("prefill_tps", "decode_tps", "ttft_s"):
            assert r[metric]["n"] == 2 and r[metric]["median"] > 0
        assert r["peak_memory_gb"] > 0


@pytest.mark.parametrize("api", NAMES)
def test_server_load_counts_what_was_sent(api, scripted_server, tokenizer_dir):
    reply_tokens = len(scripted_server.engine.registry.default.tokenizer.encode(REPLY, add_special_tokens=False))
    doc = bench(
        "--url", scripted_server.url + "/v1", "--api", api, "--model", str(tokenizer_dir),
        "--clients", "1,3", "--requests", "4", "--repeat", "2", "--prompt-tokens", "70", "--gen-tokens", "50",
    )
    assert doc["scenario"] == "load" and doc["settings"]["clients"] == [1, 3] and doc["settings"]["api"] == api
    assert doc["targets"][0]["model"] == "scripted"  # from GET /v1/models
    assert [r["clients"] for r in rows(doc)] == [1, 3]
    for r in rows(doc):
        assert (r["runs"], r["requests"], r["errors"]) == (2, 8, 0)
        assert r["token_source"] == "usage"
        assert r["output_tokens"] == 8 * reply_tokens
        assert r["tokens_per_request"]["min"] == r["tokens_per_request"]["max"] == reply_tokens
        assert r["prompt_tokens_reported"]["min"] == r["prompt_tokens_reported"]["max"] == 70  # exact, as the server counts
        assert r["ttft_s"]["n"] == r["latency_s"]["n"] == 8
        assert 0 < r["ttft_s"]["median"] <= r["latency_s"]["median"]
        assert r["itl_s"]["n"] == 8 * (r["tokens_per_request"]["min"] - 1) > 0  # one gap between two tokens
        assert r["itl_s"]["median"] <= r["itl_s"]["p95"] <= r["latency_s"]["max"]
        assert r["server_cpu_s_per_token"]["n"] == 2 and r["server_cpu_s_per_token"]["min"] >= 0  # the server runs here
        assert r["aggregate_tps"]["n"] == 2 and r["vs_first"] is None
    # 1 warm-up + 2 levels × 2 runs × 4 requests, all different prompts
    prompts = scripted_of(scripted_server.engine).prompts
    assert len(prompts) == 1 + 16 == len(set(prompts))


def test_server_without_usage_and_with_failures(tokenizer_dir):
    failures = {3: "http", 5: "stream"}
    with FakeServer(words=7, usage=False, fail=failures.get) as server:
        doc = bench("--url", server.url, "--model", str(tokenizer_dir), "--clients", "2", "--requests", "6",
                    "--repeat", "1", "--warmup", "0")
    [r] = rows(doc)
    assert len(server.requests) == r["requests"] == 6
    assert r["errors"] == 2 and r["token_source"] == "chunks"
    assert r["output_tokens"] == 4 * 7 and r["ttft_s"]["n"] == 4
    assert sorted(r["error_messages"]) == ["1× request 5 broke mid-stream", "1× the server answered 500: request 3 failed"]
    assert any("counted from streamed chunks" in note for note in doc["notes"])
    assert all(body["max_tokens"] == 64 and body["temperature"] == 0.0 for _, body in server.requests)


@pytest.mark.parametrize("api", ["responses", "anthropic"])
def test_other_protocols(api, tokenizer_dir):
    with FakeServer(words=5, usage=True) as server:
        doc = bench("--url", server.url, "--api", api, "--model", str(tokenizer_dir), "--clients", "1,2",
                    "--repeat", "1", "--warmup", "0")
    assert doc["settings"]["api"] == api
    assert [(r["requests"], r["errors"], r["output_tokens"], r["token_source"]) for r in rows(doc)] == [
        (1, 0, 5, "usage"), (2, 0, 10, "usage")]
    assert {path for path, _ in server.requests} == {"/v1/responses" if api == "responses" else "/v1/messages"}


def test_compare_interleaves_targets_and_gives_ratios(tokenizer_dir):
    log: list[str] = []
    with FakeServer(words=6, usage=True, name="a", log=log) as a, FakeServer(words=3, name="b", log=log) as b:
        doc = bench("--url", a.url, "--compare", b.url, "--model", str(tokenizer_dir), "--clients", "1",
                    "--requests", "2", "--repeat", "2")
    assert log == ["a", "b", "a", "a", "b", "b", "a", "a", "b", "b"]  # warm-ups, then each run in turn
    first, second = rows(doc)
    assert (first["target"], second["target"]) == (a.url.split("//")[1], b.url.split("//")[1])
    assert first["vs_first"] is None
    assert set(second["vs_first"]) == {"aggregate_tps", "decode_tps", "ttft_s", "latency_s", "itl_s", "itl_p95_s",
                                       "server_cpu_s_per_token"}
    assert second["vs_first"]["itl_p95_s"] == pytest.approx(second["itl_s"]["p95"] / first["itl_s"]["p95"])
    assert (first["output_tokens"], second["output_tokens"]) == (4 * 6, 4 * 3)
    assert (first["itl_s"]["n"], second["itl_s"]["n"]) == (4 * 5, 4 * 2)  # the gaps between each answer's words
    assert (first["token_source"], second["token_source"]) == ("usage", "chunks")
    # the same prompts went to both servers
    assert [body["messages"] for _, body in a.requests] == [body["messages"] for _, body in b.requests]


def test_turns_grow_one_conversation(scripted_engine, serve, tokenizer_dir):
    engine = scripted_engine(lambda prompt: f"Reply number {prompt.count('Story ')}.")
    server = serve(engine)
    doc = bench("--url", server.url, "--model", str(tokenizer_dir), "--turns", "3", "--repeat", "2",
                "--prompt-tokens", "60", "--gen-tokens", "20")
    assert doc["scenario"] == "turns"
    assert [(r["turn"], r["requests"], r["errors"], r["ttft_s"]["n"]) for r in rows(doc)] == [
        (1, 2, 0, 2), (2, 2, 0, 2), (3, 2, 0, 2)]
    sizes = [r["prompt_tokens"]["median"] for r in rows(doc)]
    assert sizes[0] == 60 and sizes[0] < sizes[1] < sizes[2]
    third = scripted_of(engine).prompts[-1]  # the last turn saw the whole conversation
    assert "Reply number 1." in third and "Reply number 2." in third and third.count("Story ") == 3


@pytest.mark.slow  # mlxcli in a subprocess
def test_engine_beside_a_server_gives_the_http_ratio(tiny_model_dir):
    engine = MlxEngine.from_path("tiny", tiny_model_dir, EngineSettings()).start()
    try:
        with RunningServer(engine) as server:
            doc = bench_process("--engine", "--url", server.url, "--model", str(tiny_model_dir), "--clients", "1",
                        "--prompt-tokens", "60", "--gen-tokens", "8", "--repeat", "2")
    finally:
        engine.stop(grace=1)
    assert [t["kind"] for t in doc["targets"]] == ["engine", "http"]
    direct, http = rows(doc)
    assert direct["target"] == "engine" and direct["requests"] == http["requests"] == 2
    assert direct["prompt_tokens_reported"]["median"] == http["prompt_tokens_reported"]["median"] == 60
    assert http["vs_first"]["decode_tps"] == pytest.approx(http["decode_tps"]["median"] / direct["decode_tps"]["median"])


def test_table_and_output_file(tokenizer_dir, tmp_path):
    out = tmp_path / "bench.json"
    with FakeServer(words=4, usage=True) as server:
        result = CliRunner().invoke(app, ["bench", "--url", server.url, "--model", str(tokenizer_dir), "--clients", "1",
                                          "--repeat", "1", "--output", str(out)])
    assert result.exit_code == 0, result.output
    assert "load: chat API" in result.stdout and "TTFT p50" in result.stdout and "fake-model" in result.stdout
    doc = json.loads(out.read_text())
    assert doc["schema"] == "mlxcli.bench/1" and rows(doc)[0]["output_tokens"] == 4


@pytest.mark.slow  # mlxcli in a subprocess
def test_bad_options_are_clear_errors(tokenizer_dir):
    r = bench("--compare", "http://127.0.0.1:9", ok=False)
    assert r["exit_code"] == 2 and "--compare needs --url" in r["output"]
    r = bench("--url", "http://127.0.0.1:9", "--clients", "0,2", ok=False)
    assert r["exit_code"] == 2 and "positive integers" in r["output"]
    r = bench("--url", "http://127.0.0.1:1", "--model", str(tokenizer_dir), ok=False)
    assert r["exit_code"] == 1 and "cannot reach http://127.0.0.1:1" in r["output"]
    r = bench("--url", "ftp://nowhere", ok=False)
    assert r["exit_code"] == 2 and "not a server address" in r["output"]
    r = bench_process("--model", str(tokenizer_dir), "--prompt-tokens", "3", "--gen-tokens", "2", ok=False)
    assert r["exit_code"] == 1 and "too short" in r["output"] and "Traceback" not in r["output"]


SUMMARY = {"n", "median", "mean", "min", "max", "stdev", "p95"}
ROW_KEYS = {
    "engine": {"target", "prompt_tokens", "gen_tokens", "runs", "errors", "error_messages", "prompt_tokens_measured",
               "output_tokens", "prefill_tps", "decode_tps", "ttft_s", "peak_memory_gb"},
    "load": {"target", "clients", "prompt_tokens", "gen_tokens", "runs", "requests", "errors", "error_messages",
             "token_source", "output_tokens", "aggregate_tps", "decode_tps", "itl_s", "server_cpu_s_per_token", "ttft_s",
             "latency_s", "tokens_per_request", "prompt_tokens_reported", "cached_tokens_reported", "vs_first"},
    "turns": {"target", "turn", "requests", "errors", "error_messages", "token_source", "prompt_tokens",
              "cached_tokens_reported", "ttft_s", "decode_tps", "tokens_per_request", "vs_first"},
}


@pytest.mark.parametrize("scenario", [pytest.param("engine", marks=pytest.mark.slow), "load", "turns"])  # engine: a subprocess
def test_json_schema_is_the_documented_one(scenario, tiny_model_dir):
    # docs/bench.md documents these keys; within mlxcli.bench/1 fields may only be added.
    with FakeServer(words=3, usage=True) as server:
        args = {"engine": [], "load": ["--url", server.url], "turns": ["--url", server.url, "--turns", "2"]}[scenario]
        run = bench_process if scenario == "engine" else bench
        doc = run(*args, "--model", str(tiny_model_dir), "--prompt-tokens", "60", "--gen-tokens", "4",
                  "--clients", "1", "--repeat", "1", "--warmup", "0")
    assert set(doc) == {"schema", "mlxcli_version", "created", "machine", "scenario", "settings", "targets", "results", "notes"}
    assert set(doc["machine"]) == {"system", "machine", "cpus", "python"}
    assert set(doc["settings"]) == {"api", "timeout_s", "image_size", "image_turns", "prompt_tokens", "gen_tokens", "clients", "requests",
                                    "turns", "repeat", "warmup", "seed", "temperature"}
    target_keys = {"engine": {"name", "kind", "model", "dtype", "fast_path"}, "http": {"name", "kind", "url", "api", "model", "pid"}}
    assert all(set(t) == target_keys[t["kind"]] for t in doc["targets"])
    for row in doc["results"]:
        assert set(row) == ROW_KEYS[scenario]
        for key, value in row.items():
            if isinstance(value, dict) and key != "vs_first":
                assert set(value) == SUMMARY, key


@pytest.mark.slow  # mlxcli in a subprocess
def test_turns_on_the_engine(tiny_model_dir):
    doc = bench_process("--model", str(tiny_model_dir), "--turns", "2", "--repeat", "1", "--gen-tokens", "4")
    assert doc["scenario"] == "turns" and [t["kind"] for t in doc["targets"]] == ["engine"]
    first, second = rows(doc)
    assert first["prompt_tokens"]["median"] == 128  # the default prompt length outside the engine matrix
    assert second["prompt_tokens"]["median"] > 128 + 4
    assert first["errors"] == second["errors"] == 0


def test_prompts_change_between_runs_unless_seeded(tokenizer_dir):
    def first_prompts(*args: str) -> tuple[int, list]:
        with FakeServer(words=2) as server:
            doc = bench("--url", server.url, "--model", str(tokenizer_dir), "--clients", "2", "--repeat", "1", *args)
        return doc["settings"]["seed"], sorted(body["messages"][0]["content"] for _, body in server.requests)

    seed_a, a = first_prompts()
    seed_b, b = first_prompts()
    assert seed_a != seed_b and a != b  # a server's prompt cache never sees a run's prompts again
    assert first_prompts("--seed", str(seed_a)) == (seed_a, a)


@pytest.mark.default_model
def test_the_engine_matrix_exits_cleanly_with_the_default_model(default_model_dir, test_home):
    """MLX used to abort at interpreter teardown (exit status 134) after the JSON was printed."""
    doc = bench_process("--prompt-tokens", "128", "--gen-tokens", "16", "--repeat", "1", home=test_home)
    assert doc["targets"][0]["model"] == "smollm2-135m"
    [row] = doc["results"]
    assert (row["prompt_tokens"], row["gen_tokens"], row["errors"]) == (128, 16, 0)
    assert row["output_tokens"]["min"] == 16


@pytest.mark.parametrize("api", NAMES)
def test_json_schema_runs_a_constrained_twin_of_each_target(api, scripted_server, tokenizer_dir, tmp_path):
    schema = {"type": "object", "properties": {"word": {"enum": ["alpha", "omega"]}}, "required": ["word"], "additionalProperties": False}
    path = tmp_path / "schema.json"
    path.write_text(json.dumps(schema))
    doc = bench("--url", scripted_server.url, "--api", api, "--model", str(tokenizer_dir), "--clients", "1", "--requests", "2",
                "--repeat", "1", "--prompt-tokens", "70", "--gen-tokens", "20", "--json-schema", str(path))
    free, constrained = rows(doc)
    assert constrained["target"] == free["target"] + " +json-schema" and constrained["vs_first"] is not None
    assert (free["errors"], constrained["errors"]) == (0, 0)
    # The script's reply is prose, five tokens; the twin's is the JSON the schema allows, a different length.
    reply_tokens = len(scripted_server.engine.registry.default.tokenizer.encode(REPLY, add_special_tokens=False))
    assert free["tokens_per_request"]["max"] == reply_tokens != constrained["tokens_per_request"]["max"]
    assert doc["targets"][1]["json_schema"] == schema
    assert bench("--json-schema", str(path), "--model", str(tokenizer_dir), ok=False)["exit_code"] == 2  # the engine matrix

"""`mlxcli serve --launch N`: a model sharded over local ranks (mlx.launch, ring backend over loopback).

Judged by the OpenAI SDK against the single-process server: the same greedy answers, streamed and not,
alone and four at once. A rank killed mid-answer fails the request and stops rank 0.
"""

from __future__ import annotations

import concurrent.futures
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import openai
import pytest
from typer.testing import CliRunner

from mlxcli.cli import app
from mlxcli.cli.distributed import free_ports
from mlxcli.engine.kinds import served_model
from mlxcli.engine.settings import EngineSettings
from tests.support.models import make_tiny_model_dir
from tests.support.process import free_port

pytestmark = pytest.mark.distributed

PROMPTS = ["Hello", "Count to five", "Why is the sky blue?", "Tell me a story about a fox"]
# Random tiny models repeat one token when greedy; a strong repetition penalty walks down their logits
# instead, so that an answer shows whether every rank computed the same ones.
SAMPLING = {"max_tokens": 12, "extra_body": {"repetition_penalty": 5.0}}
LAUNCH_PROBE = "import mlx.core as mx; g = mx.distributed.init(); assert g.size() == 2; mx.eval(mx.distributed.all_sum(mx.array(1.0)))"


@pytest.fixture(scope="module")
def launcher() -> str:
    """mlx.launch, once it has shown it can start two local ranks here (else the tests fail, saying why: a full run
    is complete or fails; ``-m "not distributed"`` leaves these tests out)."""
    launch = Path(sys.executable).parent / "mlx.launch"
    command = [str(launch), "-n", "2", "--backend", "ring", "--starting-port", str(free_ports(2)), "--", sys.executable, "-c", LAUNCH_PROBE]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as exc:
        pytest.fail(f"mlx.launch cannot start local ranks here: {exc}")
    if done.returncode != 0 or "exited with code" in done.stderr:
        pytest.fail(f"mlx.launch cannot start local ranks here: {done.stderr[-500:]}")
    return str(launch)


class Ranks:
    """`mlxcli serve --launch N ...` in a session of its own, so that stopping it stops every rank."""

    def __init__(self, ranks: int, model: Path, *args: str, home: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = home / f"ranks-{self.port}.log"
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mlxcli", "serve", "--launch", str(ranks), "--model", str(model), "--port", str(self.port),
             "--temperature", "0", *args],
            env={**os.environ, "MLXCLI_HOME": str(home)}, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True,
        )

    def wait_ready(self, timeout: float = 300) -> "Ranks":
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mlxcli serve --launch exited with {self.proc.returncode}:\n{self.log()}")
            try:
                if httpx.get(self.url + "/health", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"mlxcli serve --launch did not start:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def rank_pid(self, rank: int) -> int:
        """The pid of ``rank`` (mlx.launch gives each its MLX_RANK)."""
        for entry in Path("/proc").iterdir():
            try:
                if entry.name.isdigit() and os.getsid(int(entry.name)) == self.proc.pid:
                    env = (entry / "environ").read_bytes().split(b"\0")
                    if f"MLX_RANK={rank}".encode() in env and b"mlxcli" in (entry / "cmdline").read_bytes():
                        return int(entry.name)
            except OSError:  # gone meanwhile
                continue
        raise LookupError(f"no rank {rank}:\n{self.log()}")

    def stop(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(30)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self._log.close()


@pytest.fixture
def ranks(launcher, tmp_path):
    started: list[Ranks] = []

    def start(n: int, model: Path, *args: str) -> Ranks:
        started.append(Ranks(n, model, *args, home=tmp_path))
        return started[-1].wait_ready()

    yield start
    for r in started:
        r.stop()


def sdk(url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=url + "/v1", api_key="x", max_retries=0, timeout=600)


def answer(client: openai.OpenAI, prompt: str, stream: bool = False) -> str:
    messages = [{"role": "user", "content": prompt}]
    if not stream:
        return client.chat.completions.create(model="m", messages=messages, **SAMPLING).choices[0].message.content
    chunks = client.chat.completions.create(model="m", messages=messages, stream=True, **SAMPLING)
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


def answers(url: str, alone: bool = True) -> dict[str, list[str]]:
    """Each prompt alone (not streamed, then streamed), then all four at once (two of them streamed)."""
    client = sdk(url)
    runs = {"alone": [answer(client, p) for p in PROMPTS], "streamed": [answer(client, p, stream=True) for p in PROMPTS]} if alone else {}
    with concurrent.futures.ThreadPoolExecutor(len(PROMPTS)) as pool:
        runs["together"] = list(pool.map(lambda p: answer(client, p, stream=PROMPTS.index(p) % 2 == 1), PROMPTS))
    return runs


def constrained_and_sampled(url: str) -> list[str]:
    """A JSON-mode answer (every rank masks its logits) and a seeded sampled one (every rank draws the same)."""
    client, messages = sdk(url), [{"role": "user", "content": "Give me JSON"}]
    json_mode = client.chat.completions.create(model="m", messages=messages, response_format={"type": "json_object"}, **SAMPLING)
    sampled = client.chat.completions.create(model="m", messages=messages, temperature=1.0, seed=7, max_tokens=12)
    return [json_mode.choices[0].message.content, sampled.choices[0].message.content]


def single_process(model: Path, make_engine, serve, alone: bool = True, more: bool = False) -> dict[str, list[str]]:
    url = serve(make_engine([served_model(model.name, model, EngineSettings())])).url
    return answers(url, alone) | ({"more": constrained_and_sampled(url)} if more else {})


@pytest.fixture(scope="module")
def tiny_pipeline_dir(tokenizer_dir, tmp_path_factory) -> Path:
    return make_tiny_model_dir(tokenizer_dir, tmp_path_factory.mktemp("pipeline") / "tiny-ministral3", model_type="ministral3")


def test_tensor_parallel_on_two_ranks_answers_as_one_process_does_and_a_dead_rank_stops_it(
    ranks, tiny_model_dir, make_engine, serve
):
    expected = single_process(tiny_model_dir, make_engine, serve, more=True)
    assert len(set(expected["alone"])) == len(PROMPTS)  # the prompts tell the answers apart
    server = ranks(2, tiny_model_dir)
    got = answers(server.url) | {"more": constrained_and_sampled(server.url)}
    assert got == expected and expected["streamed"] == expected["together"] == expected["alone"]

    health = httpx.get(server.url + "/health").json()
    shown = health["distributed"]
    assert (shown["mode"], shown["backend"], shown["world_size"], shown["lost"]) == ("tensor", "ring", 2, False)
    assert [r["rank"] for r in shown["ranks"]] == [0, 1] and all(r["memory_bytes"] > 0 for r in shown["ranks"])
    ps = CliRunner().invoke(app, ["ps", "--url", server.url])
    assert ps.exit_code == 0, ps.output
    assert "tensor parallel over 2 ranks (ring)" in ps.output and "rank 1" in ps.output

    # A long answer, then rank 1 dies under it: the client gets an error naming the lost rank, rank 0 exits 1.
    stream = sdk(server.url).chat.completions.create(
        model="m", messages=[{"role": "user", "content": "Go on"}], max_tokens=2000, stream=True
    )  # greedy, the tiny model repeats one token and never ends
    first = next(c for c in stream if c.choices and c.choices[0].delta.content)
    assert first.choices[0].delta.content
    os.kill(server.rank_pid(1), signal.SIGKILL)
    with pytest.raises(openai.APIError, match="connection to a peer was lost"):  # in a step or between steps
        for _ in stream:
            pass
    assert server.proc.wait(120) == 1  # rank 0's status, though mlx.launch itself exits 0
    assert "Node with rank 0 exited with code 1" in server.log()


def test_pipeline_parallel_on_two_ranks_answers_as_one_process_does(ranks, tiny_pipeline_dir, make_engine, serve):
    expected = single_process(tiny_pipeline_dir, make_engine, serve)
    server = ranks(2, tiny_pipeline_dir, "--distributed", "pipeline")
    assert answers(server.url) == expected
    assert httpx.get(server.url + "/health").json()["distributed"]["mode"] == "pipeline"
    # SIGTERM to `mlxcli serve --launch` alone (as systemd sends it) stops every rank, and it exits 0.
    ranks = [server.rank_pid(0), server.rank_pid(1)]
    os.kill(server.proc.pid, signal.SIGTERM)
    assert server.proc.wait(120) == 0
    for pid in ranks:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


@pytest.mark.default_model
def test_smollm2_on_three_ranks_answers_as_one_process_does(ranks, default_model_dir, make_engine, serve):
    # Four at once only: on 2 shared cores each of SmolLM2's 60 collectives per step can take 0.1 s.
    expected = single_process(default_model_dir, make_engine, serve, alone=False)
    assert len(set(expected["together"])) == len(PROMPTS)
    server = ranks(3, default_model_dir)
    assert answers(server.url, alone=False) == expected


def test_a_model_that_cannot_be_split_so_fails_at_start_naming_the_constraint(launcher, default_model_dir, tmp_path):
    server = Ranks(2, default_model_dir, home=tmp_path)  # SmolLM2: 9 attention heads
    try:
        server.proc.wait(300)
    finally:
        server.stop()
    assert "num_attention_heads divisible by 2, but this model has 9" in server.log()
    assert "Traceback" not in server.log()


def test_distributed_alone_is_a_clear_error():
    result = CliRunner().invoke(app, ["serve", "--distributed", "tensor", "--model", "unused"])
    assert result.exit_code == 1
    assert "needs several ranks" in result.output and "mlx.launch" in result.output

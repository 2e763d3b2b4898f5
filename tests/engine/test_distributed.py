"""The distributed engine's rank 0, in-process: a collective that fails (a rank died) fails the request
in flight with a clear error, turns /health to 503 and asks the server to stop. The ranks themselves run
under mlx.launch in tests/test_distributed_e2e.py."""

from __future__ import annotations

import threading

import httpx
import openai
import pytest

from mlxcli.engine import group, peers
from mlxcli.engine.settings import EngineSettings
from tests.support.http import wait_for


class TwoRanks:
    """The group rank 0 sees: itself and one more rank."""

    def rank(self) -> int:
        return 0

    def size(self) -> int:
        return 2


@pytest.fixture
def lose_a_rank(monkeypatch):
    """Rank 0 of two whose collectives work (rank 0's message comes back) until the third pass after the
    first job starts, which fails as the ring backend does when a peer is gone."""
    monkeypatch.setattr(group, "group", TwoRanks)
    passes_since_job: list[int] = []

    def share(self, data: bytes) -> bytes:
        if passes_since_job:
            passes_since_job.append(1)
            if len(passes_since_job) > 3:
                raise RuntimeError("[ring] connection to a peer was lost")
        elif data:  # the message that starts the job
            passes_since_job.append(1)
        return data

    monkeypatch.setattr(peers.Peers, "_share", share)


def a_long_answer_fails_with_the_lost_rank_and_stops_the_server(client, server, stopped: threading.Event) -> None:
    stream = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "go"}], max_tokens=800, stream=True)
    with pytest.raises(openai.APIError, match=r"a rank of the distributed group was lost \(\[ring\] connection to a peer was lost\)"):
        for _ in stream:
            pass
    assert wait_for(stopped.is_set)
    health = httpx.get(server.url + "/health")
    assert health.status_code == 503 and health.json()["distributed"]["lost"] is True


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")  # the engine thread dies, as it should
def test_a_lost_rank_fails_the_request_in_flight_reports_503_and_stops_the_server(lose_a_rank, scripted_engine, serve):
    engine = scripted_engine(lambda _prompt: "and on " * 400, EngineSettings(temperature=0.0, distributed="tensor"))
    stopped = threading.Event()

    def shut_down() -> None:  # as the server's SIGTERM handler does, which fails what is still running
        engine.stop(grace=0)
        stopped.set()

    engine.peers.on_lost = lambda: threading.Thread(target=shut_down).start()
    server = serve(engine)
    shown = httpx.get(server.url + "/health").json()["distributed"]
    assert (shown["mode"], shown["world_size"], [r["rank"] for r in shown["ranks"]], shown["lost"]) == ("tensor", 2, [0, 1], False)
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="x", max_retries=0)
    a_long_answer_fails_with_the_lost_rank_and_stops_the_server(client, server, stopped)


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")  # the engine thread dies, as it should
def test_a_rank_lost_inside_a_step_stops_the_group_and_a_request_s_own_failure_does_not(monkeypatch, scripted_engine, serve):
    """A collective that fails inside a decode step leaves this rank out of step with the others (its next
    collective may never return): the engine stops at once. A failure of the request itself happens on
    every rank alike, so the group goes on."""
    from tests.support.models import Fail, scripted_of

    monkeypatch.setattr(group, "group", TwoRanks)
    monkeypatch.setattr(peers.Peers, "_share", lambda self, data: data)
    engine = scripted_engine(lambda prompt: Fail("so far") if "fail" in prompt else "and on " * 400,
                             EngineSettings(temperature=0.0, distributed="tensor"))
    stopped = threading.Event()
    engine.peers.on_lost = stopped.set
    server = serve(engine)
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="x", max_retries=0)
    with pytest.raises(openai.APIError, match="scripted failure"):
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": "fail"}])
    assert client.chat.completions.create(model="m", messages=[{"role": "user", "content": "go"}], max_tokens=3).choices
    assert httpx.get(server.url + "/health").status_code == 200 and not stopped.is_set()

    model = scripted_of(engine)
    forward, passes = type(model).__call__, []

    def a_rank_dies_after_five_passes(self, *args, **kwargs):
        passes.append(1)
        if len(passes) > 5:
            raise RuntimeError("[ring] connection to a peer was lost")
        return forward(self, *args, **kwargs)

    monkeypatch.setattr(type(model), "__call__", a_rank_dies_after_five_passes)
    a_long_answer_fails_with_the_lost_rank_and_stops_the_server(client, server, stopped)


def test_a_distributed_engine_refuses_what_its_ranks_cannot_follow(monkeypatch, scripted_engine):
    monkeypatch.setattr(group, "group", TwoRanks)
    with pytest.raises(Exception, match="--idle-unload cannot be used with --distributed"):
        scripted_engine(lambda _prompt: "x", EngineSettings(distributed="tensor", idle_unload=60))


def test_a_vision_model_is_refused_rather_than_run_whole_on_every_rank(monkeypatch, tiny_vlm_dir):
    from mlxcli.core.errors import ModelError
    from mlxcli.engine.engine import MlxEngine
    from mlxcli.engine.kinds import served_model

    monkeypatch.setattr(group, "group", TwoRanks)
    settings = EngineSettings(distributed="tensor")
    with pytest.raises(ModelError, match="not an embedding or vision model"):
        MlxEngine([served_model("tiny-vl", tiny_vlm_dir, settings)], settings)


def test_the_ring_gets_a_free_port_for_every_rank():
    """The ring listens on one port per rank counting up from its starting port: all must be free
    (a busy second port failed a launch with "[ring] Couldn't bind socket")."""
    import socket

    from mlxcli.cli.distributed import free_ports

    start = free_ports(3)
    with socket.socket() as a, socket.socket() as b, socket.socket() as c:
        for sock, port in zip((a, b, c), range(start, start + 3)):
            sock.bind(("127.0.0.1", port))


def test_every_rank_is_told_the_same_seed_for_an_unseeded_sampled_request(monkeypatch, scripted_engine):
    """Each rank draws its own tokens: an unseeded sampled request must reach them all with one seed."""
    import pickle

    from mlxcli.core.request import ChatRequest, Message, Sampling

    monkeypatch.setattr(group, "group", TwoRanks)
    told: list[tuple] = []

    def share(self, data: bytes) -> bytes:
        if data:
            told.append(pickle.loads(data))
        return data

    monkeypatch.setattr(peers.Peers, "_share", share)
    engine = scripted_engine(lambda _prompt: "hi", EngineSettings(temperature=0.0, distributed="tensor"))
    for sampling in (Sampling(temperature=0.8), Sampling(temperature=0.8, seed=7), Sampling(temperature=0.0)):
        generation = engine.submit(ChatRequest([Message("user", "go")], sampling=sampling))
        list(generation)
        described_sampling = told[-1][0][3]  # (job described, cancels, quitting); the job's sampling
        assert described_sampling.seed == generation.job.sampling.seed  # what rank 0 itself draws with
    seeds = [message[0][3].seed for message in told[-3:]]
    assert seeds[0] is not None and seeds[1] == 7 and seeds[2] is None  # only unseeded sampling gets one

"""GET /metrics through real HTTP: parsed with prometheus-client's own parsers, every series moved
by what a known sequence of requests did, its API-key protection, a scrape under load."""

from __future__ import annotations


import anthropic
import httpx
import openai
import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families

from mlxcli.core.request import ChatRequest, Message
from mlxcli.engine.engine import EngineSettings, MlxEngine
from mlxcli.server.settings import ServerSettings
from tests.support import prometheus
from tests.support.http import CHAT, TOKEN, open_stream, openai_error, read_until, wait_for
from tests.support.models import scripted_model, scripted_of
from tests.support.prometheus import delta, moved, value
from tests.support.server import RunningServer

KEY = "sk-metrics"
AUTH = {"Authorization": f"Bearer {KEY}"}
LONG_REPLY = " ".join(f"w{i}" for i in range(400))  # ~800 tokens: still generating when it is closed
MODEL = "scripted"


def respond(prompt: str) -> str:
    if "boom" in prompt:
        raise RuntimeError("scripted failure inside generation")
    if "long" in prompt:
        return LONG_REPLY
    return "The answer is four."


def scrape(server, headers=AUTH):
    return prometheus.scrape(server, headers)


@pytest.fixture(scope="module")
def engine(tokenizer_dir):
    # Room for one generating and one waiting request: two open streams fill it.
    settings = EngineSettings(temperature=0.0, max_batch=1, max_queue=1)
    engine = MlxEngine([scripted_model(tokenizer_dir, respond)], settings).start()
    yield engine
    engine.stop(grace=1)


@pytest.fixture(scope="module")
def server(engine):
    with RunningServer(engine, ServerSettings(port=0, api_keys=[KEY])) as srv:
        yield srv


def test_metrics_parse_and_every_series_moves_by_what_the_requests_did(server, engine):
    client = openai.OpenAI(base_url=server.url + "/v1", api_key=KEY, max_retries=0)
    model = scripted_of(engine)
    model.step_delay = 0.0
    before = scrape(server)
    assert value(before, "mlxcli:model_loaded", model=MODEL) == 1.0

    # Answered: one whole, one streamed, one cut off by max_tokens.
    whole = client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "two plus two?"}])
    chunks = list(client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "and streamed?"}], stream=True, stream_options={"include_usage": True},
    ))  # fmt: skip
    streamed = chunks[-1].usage
    cut = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "long"}], max_tokens=5)
    answered = [whole.usage, streamed, cut.usage]
    assert cut.choices[0].finish_reason == "length" and cut.usage.completion_tokens == 5
    claude = anthropic.Anthropic(base_url=server.url, api_key=KEY, max_retries=0).messages.create(
        model="claude-sonnet-4-5", max_tokens=50, messages=[{"role": "user", "content": "two plus two?"}]
    )
    claude_prompt = claude.usage.input_tokens + claude.usage.cache_read_input_tokens

    # Cancelled: two streams that fill the engine (one generating, one waiting), closed half-way.
    model.step_delay = 0.05
    first = open_stream(server.http.port, "long one", **{"model": MODEL}, headers=AUTH)
    read_until(first, TOKEN)
    second = open_stream(server.http.port, "long two", **{"model": MODEL}, headers=AUTH)
    assert wait_for(lambda: engine.stats()["queue_depth"] == 1)
    busy = scrape(server)
    assert value(busy, "mlxcli:num_requests_running") == 1 and value(busy, "mlxcli:num_requests_waiting") == 1
    # Overloaded: a third request while both slots are taken.
    overloaded = httpx.post(server.url + CHAT, json={"messages": [{"role": "user", "content": "hi"}]}, headers=AUTH)
    openai_error(overloaded, 503)
    first.close()
    read_until(second, TOKEN)  # the waiting one starts once the first is cancelled
    second.close()
    assert wait_for(lambda: engine.stats()["active_requests"] == 0 and engine.stats()["queue_depth"] == 0)
    model.step_delay = 0.0

    # Failed inside generation (500, not a refusal), bad input, no key, an unknown route.
    openai_error(httpx.post(server.url + CHAT, json={"messages": [{"role": "user", "content": "boom"}]}, headers=AUTH, timeout=30), 500)
    openai_error(httpx.post(server.url + CHAT, json={"messages": [{"role": "user", "content": "hi"}], "temperature": 9}, headers=AUTH), 400)
    openai_error(httpx.post(server.url + CHAT, content=b"{not json", headers={**AUTH, "Content-Type": "application/json"}), 400)
    openai_error(httpx.post(server.url + CHAT, json={"messages": []}), 401)
    openai_error(httpx.get(server.url + "/v1/nowhere", headers=AUTH), 404)

    after = scrape(server)
    assert moved(before, after, "mlxcli:requests_total") == {
        (("api", "openai"), ("model", MODEL), ("outcome", "stop")): 2,  # "gpt-4o" is counted as the model that answered
        (("api", "openai"), ("model", MODEL), ("outcome", "length")): 1,
        (("api", "openai"), ("model", MODEL), ("outcome", "cancelled")): 2,
        (("api", "openai"), ("model", MODEL), ("outcome", "error")): 1,
        (("api", "anthropic"), ("model", MODEL), ("outcome", "stop")): 1,
    }
    rejected = {dict(labels)["reason"]: v - before[(name, labels)] for (name, labels), v in after.items() if name == "mlxcli:requests_rejected_total"}
    assert rejected == {"overloaded": 1, "invalid_request": 2, "authentication": 1, "not_found": 1, "permission": 0, "too_large": 0}

    # Tokens: the answered ones as their usage says; each cancelled one read its whole prompt
    # (a token came) and generated at least the token the test read, at most its whole reply.
    long_prompt = engine.count_tokens(ChatRequest(messages=[Message(role="user", content="long one")], model=MODEL))
    prompt = sum(u.prompt_tokens for u in answered) + claude_prompt + 2 * long_prompt
    assert delta(before, after, "mlxcli:prompt_tokens_total", model=MODEL) == prompt
    cached = sum(u.prompt_tokens_details.cached_tokens for u in answered) + claude.usage.cache_read_input_tokens
    assert cached <= delta(before, after, "mlxcli:prompt_tokens_cached_total", model=MODEL) < prompt
    completions = [u.completion_tokens for u in answered] + [claude.usage.output_tokens]
    generated = delta(before, after, "mlxcli:generation_tokens_total", model=MODEL) - sum(completions)
    assert 2 <= generated <= 2 * len(model._tokenizer.encode(LONG_REPLY))

    # Histograms: one observation per answered request (four); a gap per token after the first.
    for histogram in ("time_to_first_token_seconds", "e2e_request_latency_seconds", "request_queue_time_seconds"):
        assert delta(before, after, f"mlxcli:{histogram}_count", model=MODEL) == 4, histogram
        assert delta(before, after, f"mlxcli:{histogram}_bucket", model=MODEL, le="+Inf") == 4, histogram
        assert delta(before, after, f"mlxcli:{histogram}_sum", model=MODEL) > 0
    gaps = sum(n - 1 for n in completions)
    assert delta(before, after, "mlxcli:inter_token_latency_seconds_count", model=MODEL) == gaps

    # The engine's steps: one at least for each token of the longest answer; their prompt tokens are the
    # ones computed (not those taken from the cache), for the answered, cancelled and failed requests.
    assert delta(before, after, "mlxcli:engine_step_seconds_count") >= max(completions)
    assert delta(before, after, "mlxcli:engine_step_seconds_sum") > 0
    boom = engine.count_tokens(ChatRequest(messages=[Message(role="user", content="boom")], model=MODEL))
    assert 0 < delta(before, after, "mlxcli:engine_step_prompt_tokens_sum") <= prompt - cached + boom

    assert value(after, "mlxcli:num_requests_running") == 0 and value(after, "mlxcli:num_requests_waiting") == 0
    assert value(after, "mlxcli:prompt_cache_entries") >= 1 and value(after, "mlxcli:prompt_cache_bytes") > 0
    assert value(after, "mlxcli:model_load_seconds", model=MODEL) >= 0
    assert value(after, "process_resident_memory_bytes") > 0


def test_metrics_need_the_api_key_unless_told_otherwise(server, engine):
    assert openai_error(httpx.get(server.url + "/metrics"), 401)["code"] == "invalid_api_key"
    assert httpx.get(server.url + "/health").status_code == 200  # still open
    with RunningServer(engine, ServerSettings(port=0, api_keys=[KEY], metrics_auth=False)) as open_metrics:
        assert "mlxcli:requests_total" in httpx.get(open_metrics.url + "/metrics").text
        openai_error(httpx.get(open_metrics.url + "/v1/models"), 401)  # the API still needs it


def test_metrics_speak_openmetrics_when_asked(server):
    r = httpx.get(server.url + "/metrics", headers={**AUTH, "Accept": "application/openmetrics-text; version=1.0.0"})
    assert r.headers["content-type"].startswith("application/openmetrics-text")
    families = {family.name: family for family in parse_openmetrics(r.text)}
    assert families["mlxcli:requests"].type == "counter"
    assert families["mlxcli:time_to_first_token_seconds"].type == "histogram"
    assert not [s for f in families.values() for s in f.samples if s.name.endswith("_created")]
    r = httpx.post(server.url + "/metrics", headers=AUTH)
    assert openai_error(r, 405)["code"] == "method_not_allowed"


@pytest.fixture(scope="module")
def busy_server(tokenizer_dir):
    engine = MlxEngine([scripted_model(tokenizer_dir, respond)], EngineSettings(temperature=0.0, max_batch=8)).start()
    with RunningServer(engine) as srv:
        yield srv
    engine.stop(grace=1)


def test_a_scrape_during_8_streams_sees_them_running(busy_server):
    """Scraping reads the engine's state without waiting on generation: it answers while 8 streams
    are mid-answer. (How fast it answers is measured by scripts/bench_metrics.py, not asserted here.)"""
    scripted_of(busy_server.engine).step_delay = 0.02
    client = httpx.Client(base_url=busy_server.url, timeout=30)
    streams = [open_stream(busy_server.http.port, f"long {i}") for i in range(8)]
    try:
        for sock in streams:
            read_until(sock, TOKEN)
        r = client.get("/metrics")
        assert r.status_code == 200
        samples = {
            s.name: s.value for f in text_string_to_metric_families(r.text) for s in f.samples if not s.labels
        }
        assert samples["mlxcli:num_requests_running"] == 8
    finally:
        client.close()
        for sock in streams:
            sock.close()

"""Ollama request bodies → the neutral request: options, keep_alive durations, tool results linked to
their calls. Pure parsing, no server."""

from __future__ import annotations

import math

import pytest

from mlxcli.core.errors import InvalidRequest
from mlxcli.core.request import Sampling
from mlxcli.server.providers.common import MAX_INT
from mlxcli.server.providers.ollama.request import parse_chat, parse_generate

HI = [{"role": "user", "content": "hi"}]


def chat(**fields):
    return parse_chat({"model": "m", "messages": HI, **fields})


def test_options_map_onto_sampling_and_the_window():
    call = chat(options={"temperature": 0.2, "top_p": 0.5, "top_k": 7, "min_p": 0.1, "seed": 42, "num_predict": 9,
                         "stop": ["x", "y"], "repeat_penalty": 1.3, "presence_penalty": 0.4, "frequency_penalty": -0.4,
                         "num_ctx": 512, "num_gpu": 99, "use_mmap": False})
    assert call.request.sampling == Sampling(temperature=0.2, top_p=0.5, top_k=7, min_p=0.1, seed=42, max_tokens=9, stop=["x", "y"],
                                             repetition_penalty=1.3, presence_penalty=0.4, frequency_penalty=-0.4)
    assert call.request.context_window == 512 and call.stream is True and call.kind == "chat"


@pytest.mark.parametrize("predict, max_tokens", [(-1, MAX_INT), (-2, MAX_INT), (0, MAX_INT), (1, 1), (None, None)])
def test_num_predict(predict, max_tokens):
    assert chat(options={"num_predict": predict}).request.sampling.max_tokens == max_tokens


def test_a_negative_seed_is_a_random_one():
    assert chat(options={"seed": -1}).request.sampling.seed is None


@pytest.mark.parametrize(
    "value, seconds",
    [(None, None), (0, 0.0), ("0", 0.0), (300, 300.0), (2.5, 2.5), ("300", 300.0), ("5m", 300.0), ("1h30m", 5400.0),
     ("1.5h", 5400.0), ("250ms", 0.25), ("-1", math.inf), (-1, math.inf), ("-5m", math.inf), ("+10s", 10.0)],
)
def test_keep_alive_durations(value, seconds):
    assert chat(**({} if value is None else {"keep_alive": value})).request.keep_alive == seconds


@pytest.mark.parametrize("value", ["5 m", "m", "5x", "1h-5m", "", "nan", True, {}])
def test_bad_keep_alive(value):
    with pytest.raises(InvalidRequest) as info:
        chat(keep_alive=value)
    assert info.value.param == "keep_alive"


def test_tool_results_get_the_ids_of_the_calls_they_answer():
    messages = HI + [
        {"role": "assistant", "content": "", "tool_calls": [
            {"function": {"name": "get_weather", "arguments": {"city": "Paris"}}},
            {"id": "call_given", "function": {"name": "get_time", "arguments": '{"zone": "CET"}'}},
            {"function": {"name": "get_weather", "arguments": {"city": "Rome"}}},
        ]},
        {"role": "tool", "content": "12:00", "tool_name": "get_time"},
        {"role": "tool", "content": "sunny", "tool_name": "get_weather"},
        {"role": "TOOL", "content": "rain"},  # no name: the first call still open
    ]
    out = parse_chat({"model": "m", "messages": messages}).request.messages
    weather_paris, time_call, weather_rome = out[1].tool_calls
    assert time_call.id == "call_given" and time_call.arguments == '{"zone": "CET"}'
    assert weather_paris.id.startswith("call_") and weather_paris.id != weather_rome.id
    assert [(m.tool_call_id, m.name) for m in out[2:]] == [
        ("call_given", "get_time"), (weather_paris.id, "get_weather"), (weather_rome.id, "get_weather")]


def test_generate_builds_a_conversation_and_an_empty_prompt_only_loads():
    call = parse_generate({"model": "m:latest", "prompt": "Why?", "system": "Be brief.", "stream": False})
    assert [(m.role, m.content) for m in call.request.messages] == [("system", "Be brief."), ("user", "Why?")]
    assert (call.model, call.request.model, call.stream, call.load) == ("m:latest", "m", False, False)
    assert parse_generate({"model": "m"}).load and parse_chat({"model": "m", "messages": []}).load

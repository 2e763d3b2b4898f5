"""Several models in one engine: names and aliases, on-demand loading, LRU eviction, idle unloading."""

from __future__ import annotations

import json
import math
import threading
from collections import Counter
from pathlib import Path

import pytest
from mlx_lm.utils import load_tokenizer

from mlxcli.core.collect import collect
from mlxcli.core.errors import ContextLengthExceeded, EngineFailure, InvalidRequest, ModelError, ModelNotFound
from mlxcli.core.events import TextDelta
from mlxcli.core.request import ChatRequest, Message, Sampling
from mlxcli.engine.engine import EngineSettings, MlxEngine
from mlxcli.engine.loading import LoadedModel
from mlxcli.engine.kinds import served_model
from mlxcli.engine.served import ServedModel
from mlxcli.engine.settings import ModelSpec
from tests.support.http import wait_for
from tests.support.models import ScriptedModel, make_tiny_model_dir, scripted_model, scripted_of


def ask(model: str | None, text: str = "Hi", **sampling) -> ChatRequest:
    return ChatRequest(messages=[Message("user", text)], sampling=Sampling(**sampling), model=model)


def states(engine: MlxEngine) -> dict[str, str]:
    return {m.name: m.state for m in engine.models()}


@pytest.fixture
def pair(tokenizer_dir):
    """Factory: scripted models "alpha" (aliases a, first) and "beta" (alias b); counts their loads."""
    loads: Counter[str] = Counter()

    def make(**kw) -> list[ServedModel]:
        count = lambda name: loads.update([name])  # noqa: E731
        return [
            scripted_model(tokenizer_dir, lambda p: "I am alpha.", name="alpha", aliases=("a", "first"), on_load=count, **kw),
            scripted_model(tokenizer_dir, lambda p: "I am beta.", name="beta", aliases=("b",), on_load=count, **kw),
        ]

    make.loads = loads
    return make


# ---- names -------------------------------------------------------------------


def test_requests_reach_models_by_name_alias_and_any_case(make_engine, pair):
    engine = make_engine(pair())
    for name, reply in [("alpha", "I am alpha."), ("B", "I am beta."), ("first", "I am alpha."), ("beta", "I am beta.")]:
        assert collect(engine.submit(ask(name))).text == reply
    assert collect(engine.submit(ask(None))).text == "I am alpha."  # no name: the first (default) model


def test_alias_patterns_route_families_of_names(make_engine, tokenizer_dir):
    """Claude Code asks for claude-haiku-* and claude-sonnet-* models: patterns send them where the config says."""
    models = [
        scripted_model(tokenizer_dir, lambda p: "I am alpha.", name="alpha", aliases=("claude-haiku-*",)),
        scripted_model(tokenizer_dir, lambda p: "I am beta.", name="beta", aliases=("claude-*", "gpt-4?")),
    ]
    engine = make_engine(models, model_aliases=[("o3*", "alpha")])
    for name, reply in [("claude-haiku-4-5-20251001", "I am alpha."), ("CLAUDE-SONNET-4-5", "I am beta."),
                        ("gpt-4o", "I am beta."), ("o3-mini", "I am alpha."), ("beta", "I am beta.")]:
        assert collect(engine.submit(ask(name))).text == reply, name
    with pytest.raises(ModelNotFound):
        engine.submit(ask("gpt-4.1"))  # "?" is one character


def test_a_model_alias_for_a_model_not_served_fails_at_start(make_engine, pair):
    with pytest.raises(ModelError, match="--model-alias claude-\\*=gamma: no served model is named 'gamma'"):
        make_engine(pair(), model_aliases=[("claude-*", "gamma")])


def test_unknown_name_with_several_models_is_model_not_found(make_engine, pair):
    engine = make_engine(pair())
    with pytest.raises(ModelNotFound) as err:
        engine.submit(ask("gpt-4o"))
    assert err.value.status == 404 and err.value.param == "model" and err.value.code == "model_not_found"
    assert "alpha" in err.value.message and "beta" in err.value.message
    assert engine.stats()["queue_depth"] == 0


def test_single_model_answers_any_name_unless_strict(make_engine, tokenizer_dir):
    lenient = make_engine([scripted_model(tokenizer_dir, lambda p: "ok", name="only")])
    assert collect(lenient.submit(ask("gpt-4o"))).text == "ok"
    strict = make_engine([scripted_model(tokenizer_dir, lambda p: "ok", name="only", aliases=("o",))], strict_model_names=True)
    assert collect(strict.submit(ask("o"))).text == "ok"
    assert collect(strict.submit(ask(None))).text == "ok"
    with pytest.raises(ModelNotFound):
        strict.submit(ask("gpt-4o"))


def test_a_name_reaching_two_models_is_refused(tokenizer_dir):
    a = scripted_model(tokenizer_dir, lambda p: "x", name="a", aliases=("shared",))
    b = scripted_model(tokenizer_dir, lambda p: "y", name="b", aliases=("SHARED",))
    with pytest.raises(ModelError, match="(?i)shared.* both .a. and .b."):
        MlxEngine([a, b])


# ---- loading and eviction ------------------------------------------------------


def test_one_loaded_model_swaps_on_each_switch(make_engine, pair):
    engine = make_engine(pair(), max_loaded_models=1)
    assert states(engine) == {"alpha": "loaded", "beta": "unloaded"}  # the default loads at start
    order = ["b", "a", "a", "beta", "first", "b"]
    for name in order:
        reply = collect(engine.submit(ask(name))).text
        expected = "alpha" if engine.resolve(name) == "alpha" else "beta"
        assert reply == f"I am {expected}."
        assert states(engine)[expected] == "loaded"
        assert engine.stats()["loaded_models"] == [expected]
    # alpha at start, then a load at every switch: b | a a | beta | first | b
    assert pair.loads == Counter(alpha=3, beta=3)


def test_two_loaded_models_stay_and_the_least_recently_used_is_evicted(make_engine, pair, tokenizer_dir):
    models = pair() + [scripted_model(tokenizer_dir, lambda p: "I am gamma.", name="gamma",
                                      on_load=lambda n: pair.loads.update([n]))]
    engine = make_engine(models, max_loaded_models=2)
    for name in ["a", "b", "a", "b"]:
        collect(engine.submit(ask(name)))
    assert pair.loads == Counter(alpha=1, beta=1)  # both fit: no reloads
    collect(engine.submit(ask("a")))  # alpha is now the most recently used
    assert collect(engine.submit(ask("gamma"))).text == "I am gamma."
    assert states(engine) == {"alpha": "loaded", "beta": "unloaded", "gamma": "loaded"}


class GatedModel(ScriptedModel):
    """A scripted model that stops before decoding step ``after`` until ``gate`` opens."""

    def __init__(self, *args, gate: threading.Event, after: int, **kwargs):
        super().__init__(*args, **kwargs)
        self.gate, self.after, self.steps = gate, after, 0

    def __call__(self, inputs, cache=None, **kwargs):
        if inputs.shape[1] == 1:  # a decoding step (prefill passes the prompt)
            self.steps += 1
            if self.steps == self.after:
                assert self.gate.wait(30)
        return super().__call__(inputs, cache=cache, **kwargs)


def gated_model(tokenizer_dir: Path, name: str, reply: str, gate: threading.Event, after: int) -> ServedModel:
    tokenizer = load_tokenizer(tokenizer_dir)

    def load() -> LoadedModel:
        model = GatedModel(tokenizer, lambda p: reply, len(tokenizer), gate=gate, after=after)
        return LoadedModel(name, tokenizer_dir, model, tokenizer, {}, 2048, "scripted", 0.0)

    return ServedModel(name=name, tokenizer=tokenizer, context_window=2048, load=load)


def test_request_for_another_model_waits_for_the_running_generation(make_engine, pair, tokenizer_dir):
    gate = threading.Event()
    reply = "one two three four five six seven eight nine ten"
    alpha = gated_model(tokenizer_dir, "alpha", reply, gate, after=4)
    beta = pair()[1]
    engine = make_engine([alpha, beta], max_loaded_models=1)

    running = engine.submit(ask("alpha"))
    first = running.next_event(timeout=20)
    assert isinstance(first, TextDelta)  # alpha is mid-generation, blocked at its gate
    waiting = engine.submit(ask("beta"))
    assert wait_for(lambda: engine.stats()["queue_depth"] == 1)  # the engine thread is inside alpha's step
    assert engine.stats() == {
        "queue_depth": 1, "active_requests": 1, "loaded_models": ["alpha"], "loading_models": [],
        "prompt_cache": engine.stats()["prompt_cache"], "steps": engine.stats()["steps"], "speculation": {},
    }
    assert [m.active for m in engine.models()] == [1, 0]

    gate.set()
    rest = collect(running)
    assert first.text + rest.text == reply and rest.finish.reason == "stop"  # alpha was not disturbed
    assert collect(waiting).text == "I am beta."
    assert states(engine) == {"alpha": "unloaded", "beta": "loaded"}
    assert pair.loads == Counter(beta=1)


def test_loading_is_visible_while_it_happens(make_engine, pair, tokenizer_dir):
    release = threading.Event()
    slow = scripted_model(tokenizer_dir, lambda p: "slow one", name="slow", on_load=lambda n: release.wait(30))
    engine = make_engine([pair()[0], slow])
    generation = engine.submit(ask("slow"))
    assert wait_for(lambda: engine.stats()["loading_models"] == ["slow"], timeout=30)
    assert states(engine) == {"alpha": "unloaded", "slow": "loading"}  # evicted first, then loading
    release.set()
    assert collect(generation).text == "slow one"
    assert engine.stats()["loading_models"] == [] and engine.stats()["loaded_models"] == ["slow"]


def test_a_model_that_fails_to_load_fails_its_requests_only(make_engine, pair, tokenizer_dir):
    def broken_load(_name):
        raise ModelError("weights are corrupt")

    broken = scripted_model(tokenizer_dir, lambda p: "never", name="broken", on_load=broken_load)
    engine = make_engine([pair()[0], broken])
    with pytest.raises(EngineFailure, match="broken"):
        collect(engine.submit(ask("broken")))
    assert engine.alive and states(engine)["broken"] == "unloaded"
    assert collect(engine.submit(ask("alpha"))).text == "I am alpha."


def test_idle_models_are_unloaded(make_engine, pair):
    engine = make_engine(pair(), idle_unload=0.3)
    collect(engine.submit(ask("b")))
    assert wait_for(lambda: engine.stats()["loaded_models"] == [], timeout=30)
    assert collect(engine.submit(ask("a"))).text == "I am alpha."  # loads again on demand
    assert pair.loads["alpha"] == 2


def test_a_request_keep_alive_replaces_idle_unload_until_the_next_request(tokenizer_dir):
    from mlxcli.engine.registry import ModelRegistry

    now = [1000.0]
    a = scripted_model(tokenizer_dir, lambda p: "a", name="a")
    registry = ModelRegistry([a], idle_unload=10, clock=lambda: now[0])
    registry.set_keep_alive(a, 600)
    registry.acquire(a)
    registry.release(a)
    assert registry.snapshot()[0].unloads_at == 1600.0
    now[0] += 599
    registry.unload_idle()
    assert a.state == "loaded"
    registry.set_keep_alive(a, math.inf)  # forever
    now[0] += 10**6
    registry.unload_idle()
    assert a.state == "loaded" and registry.snapshot()[0].unloads_at is None
    registry.set_keep_alive(a, None)  # a request that says nothing: the server's idle_unload again
    assert registry.snapshot()[0].unloads_at == 1010.0  # last used at 1000
    registry.unload_idle()
    assert a.state == "unloaded"


def test_keep_alive_zero_unloads_after_the_answer_and_load_loads(make_engine, pair):
    engine = make_engine(pair(), max_loaded_models=2)
    request = ask("b")
    request.keep_alive = 0
    assert collect(engine.submit(request)).text == "I am beta."
    assert wait_for(lambda: states(engine)["beta"] == "unloaded")
    assert collect(engine.load("beta", 3600)).finish.reason == "stop"  # a load job: no text, one Finish
    status = next(m for m in engine.models() if m.name == "beta")
    assert status.state == "loaded" and pair.loads["beta"] == 2 and status.unloads_at > status.last_used + 3500
    assert collect(engine.load("b", 0)).text == "" and states(engine)["beta"] == "unloaded"  # unloaded before it answers
    collect(engine.load("b", 0))
    assert pair.loads["beta"] == 2  # an unload of an unloaded model loads nothing


def test_an_unload_while_the_model_generates_waits_for_the_generation(make_engine, tokenizer_dir):
    engine = make_engine([scripted_model(tokenizer_dir, lambda p: " ".join(f"w{i}" for i in range(100)))])
    scripted_of(engine).step_delay = 0.01
    generation = engine.submit(ask(None))
    assert isinstance(next(iter(generation)), TextDelta)  # generating
    assert collect(engine.load(None, 0)).finish.reason == "stop"  # answered at once
    assert states(engine)["scripted"] == "loaded"
    assert collect(generation).finish.usage.completion_tokens > 100  # it finished whole
    assert wait_for(lambda: states(engine)["scripted"] == "unloaded")


def test_a_request_may_lower_its_context_window(make_engine, tokenizer_dir):
    engine = make_engine([scripted_model(tokenizer_dir, lambda p: "a b c d e f g h i j", context_window=2048)])
    request = ask(None)
    window = len(engine.render(request).tokens) + 4
    request.context_window = window
    assert collect(engine.submit(request)).finish.usage.completion_tokens == 4  # cut at the end of its window
    request.context_window = window - 4
    with pytest.raises(ContextLengthExceeded) as err:
        engine.submit(request)
    assert err.value.context_window == window - 4
    request.context_window = 4096
    with pytest.raises(InvalidRequest, match="the model's is 2048 tokens") as err:
        engine.submit(request)
    assert err.value.param == "context_window"


def test_model_details_from_the_directory(tokenizer_dir, tmp_path):
    directory = make_tiny_model_dir(tokenizer_dir, tmp_path / "tiny")
    details = served_model("tiny", directory, EngineSettings()).details
    config = json.loads((directory / "config.json").read_text())
    h, v, layers, inner = config["hidden_size"], config["vocab_size"], config["num_hidden_layers"], config["intermediate_size"]
    kv = h // config["num_attention_heads"] * config["num_key_value_heads"]
    per_layer = 2 * h * h + 2 * h * kv + 3 * h * inner + 2 * h  # attention, MLP, two norms
    assert details.parameters == v * h + layers * per_layer + h  # embeddings (tied), layers, final norm
    assert (details.family, details.quantization, details.tools, details.reasoning) == ("llama", "float32", True, False)
    assert details.size_bytes == sum(f.stat().st_size for f in directory.iterdir()) and len(details.digest) == 64
    assert details.chat_template.startswith("{% for message in messages %}")


# ---- per-model settings -------------------------------------------------------


def test_model_defaults_apply_and_requests_override_them(make_engine, tokenizer_dir):
    words = "a b c d e f g h i j"
    spec = ModelSpec(model="terse", sampling=Sampling(max_tokens=3))
    terse = scripted_model(tokenizer_dir, lambda p: words, name="terse", spec=spec)
    free = scripted_model(tokenizer_dir, lambda p: words, name="free")
    engine = make_engine([terse, free], max_tokens=5)
    assert collect(engine.submit(ask("terse"))).finish.usage.completion_tokens == 3
    assert collect(engine.submit(ask("terse", max_tokens=4))).finish.usage.completion_tokens == 4
    assert collect(engine.submit(ask("free"))).finish.usage.completion_tokens == 5  # the engine default


def test_each_model_has_its_own_context_window(make_engine, tokenizer_dir):
    small = scripted_model(tokenizer_dir, lambda p: "x", name="small", context_window=64)
    large = scripted_model(tokenizer_dir, lambda p: "y", name="large", context_window=2048)
    engine = make_engine([small, large])
    long_text = "lorem ipsum " * 40
    with pytest.raises(ContextLengthExceeded) as err:
        engine.submit(ask("small", long_text))
    assert err.value.context_window == 64
    assert collect(engine.submit(ask("large", long_text))).text == "y"


# ---- real model directories ---------------------------------------------------


def test_model_directory_settings_window_and_chat_template(tokenizer_dir, tmp_path):
    directory = make_tiny_model_dir(tokenizer_dir, tmp_path / "tiny")  # max_position_embeddings 2048
    template = tmp_path / "plain.jinja"
    template.write_text(
        "{% for m in messages %}[{{ m.role }}] {{ m.content }}\n{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    )
    settings = EngineSettings(context_length=1000)
    plain = served_model("plain", directory, settings)
    assert plain.context_window == 1000  # the global limit lowers the model's 2048
    custom = served_model("custom", directory, settings, ModelSpec(model=str(directory), context_length=300, chat_template=str(template)))
    assert custom.context_window == 300  # the lower of the two limits

    engine = MlxEngine([plain, custom], settings)  # rendering needs no loaded weights
    request = ChatRequest(messages=[Message("system", "Be brief."), Message("user", "Hello")], model="custom")
    assert engine.render(request).text == "[system] Be brief.\n[user] Hello\n<|im_start|>assistant\n"
    request.model = "plain"
    assert engine.render(request).text.startswith("<|im_start|>system\nBe brief.<|im_end|>")


def test_broken_chat_template_fails_at_start(tokenizer_dir, tmp_path):
    directory = make_tiny_model_dir(tokenizer_dir, tmp_path / "tiny")
    template = tmp_path / "broken.jinja"
    template.write_text("{% for m in messages %}{{ m.content }")
    with pytest.raises(ModelError, match="broken.jinja"):
        served_model("x", directory, EngineSettings(chat_template=str(template)))
    with pytest.raises(ModelError, match="cannot read"):
        served_model("x", directory, EngineSettings(chat_template=str(tmp_path / "missing.jinja")))


def test_two_tiny_models_load_and_evict_for_real(tokenizer_dir, tmp_path, make_engine):
    settings = EngineSettings(temperature=0.0)
    one = served_model("one", make_tiny_model_dir(tokenizer_dir, tmp_path / "one", seed=1), settings)
    two = served_model("two", make_tiny_model_dir(tokenizer_dir, tmp_path / "two", seed=2), settings)
    engine = make_engine([one, two], max_loaded_models=1)
    texts = {name: collect(engine.submit(ask(name, "Hello", max_tokens=8))).text for name in ["one", "two"]}
    assert texts["one"] != texts["two"]  # different weights answer differently
    assert collect(engine.submit(ask("one", "Hello", max_tokens=8))).text == texts["one"]  # reloaded: same weights
    status = {m.name: m for m in engine.models()}
    assert status["one"].state == "loaded" and status["one"].weight_bytes > 0
    assert status["two"].state == "unloaded" and status["two"].weight_bytes is None


def test_same_weights_served_twice_under_two_names(tokenizer_dir, tmp_path, make_engine):
    directory = make_tiny_model_dir(tokenizer_dir, tmp_path / "tiny")
    settings = EngineSettings(temperature=0.0)
    short = served_model("short", directory, settings, ModelSpec(str(directory), sampling=Sampling(max_tokens=2)), ids=[str(directory)])
    longer = served_model("longer", directory, settings, ModelSpec(str(directory), sampling=Sampling(max_tokens=5)), ids=[str(directory)])
    engine = make_engine([short, longer], max_loaded_models=2)
    assert collect(engine.submit(ask("short"))).finish.usage.completion_tokens == 2
    assert collect(engine.submit(ask("longer"))).finish.usage.completion_tokens == 5
    assert engine.registry.resolve(str(directory)) is short  # a shared id reaches the first configured


def test_idle_unload_timing_with_an_injected_clock(tokenizer_dir):
    from mlxcli.engine.registry import ModelRegistry

    now = [1000.0]
    a = scripted_model(tokenizer_dir, lambda p: "a", name="a")
    b = scripted_model(tokenizer_dir, lambda p: "b", name="b")
    registry = ModelRegistry([a, b], max_loaded=2, idle_unload=10, clock=lambda: now[0])
    registry.acquire(a)
    now[0] += 30
    registry.unload_idle()
    assert a.state == "loaded"  # generating: never unloaded
    registry.release(a)
    registry.ensure_loaded(b)
    assert {s.name: s.unloads_at for s in registry.snapshot()} == {"a": 1040.0, "b": 1040.0}
    now[0] += 9
    registry.unload_idle(keep=b)
    assert (a.state, b.state) == ("loaded", "loaded")
    now[0] += 1
    registry.unload_idle(keep=b)
    assert (a.state, b.state) == ("unloaded", "loaded")  # b is about to be used
    registry.unload_idle()
    assert b.state == "unloaded" and registry.snapshot()[1].unloads_at is None

"""The image-generation model kind in the engine: detection, presets, loading (as saved, quantized), stepping
beside chat, cancelling, unloading."""

from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest

from mlxcli.core.errors import InvalidRequest, ModelError
from mlxcli.core.events import Finish
from mlxcli.core.images import ImageRequest
from mlxcli.core.request import ChatRequest, Message, Sampling
from mlxcli.engine.imagegen import model as imagegen
from mlxcli.engine.imagegen.kind import check_size, steps_for
from mlxcli.engine.imagegen.work import partial_steps
from mlxcli.engine.kinds import served_model
from mlxcli.engine.settings import EngineSettings, ModelSpec
from tests.support.http import wait_for
from tests.support.models import scripted_model

def generate(engine, **fields):
    fields = {"prompt": "a cat", "size": (64, 64), "steps": 2, "seed": 1, **fields}
    return engine.work("image", ImageRequest(**fields)).result(timeout=300)


def test_a_diffusers_z_image_is_detected_with_its_preset(tiny_zimage_dir):
    model = served_model("z", tiny_zimage_dir, EngineSettings())
    assert model.kind == "imagegen" and model.task == "image" and model.capabilities == ("image",)
    assert model.setup.family.name == "z-image" and model.setup.preset == "z-image-turbo" and model.setup.steps == 9
    assert model.details.family == "z-image" and model.details.parameters > 80_000_000  # the real VAE
    assert model.tokenizer is None


def test_a_preset_named_in_the_config_wins_and_a_wrong_one_is_refused(tiny_zimage_dir):
    spec = ModelSpec(model=str(tiny_zimage_dir), image_preset="z-image")
    assert served_model("z", tiny_zimage_dir, EngineSettings(), spec).setup.steps == 50
    with pytest.raises(ModelError, match="not a z-image preset"):
        served_model("z", tiny_zimage_dir, EngineSettings(), ModelSpec(model="z", image_preset="schnell"))
    with pytest.raises(ModelError, match="quantize"):
        served_model("z", tiny_zimage_dir, EngineSettings(), ModelSpec(model="z", quantize=7))


def test_a_pipeline_of_another_family_is_refused_by_name(tiny_zimage_dir, tmp_path):
    path = Path(shutil.copytree(tiny_zimage_dir, tmp_path / "sd"))
    (path / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionPipeline"}))
    with pytest.raises(ModelError, match="a StableDiffusionPipeline, which mflux does not run here"):
        served_model("sd", path, EngineSettings())


def test_a_chat_stream_keeps_streaming_while_an_image_is_generated(tiny_zimage_dir, tokenizer_dir, make_engine):
    """One denoising step per pass of the loop: a chat answer of 20 tokens started while a 200-step image
    runs is done long before the image, whatever the machine's speed (passes are counted, not seconds)."""
    engine = make_engine([scripted_model(tokenizer_dir, lambda p: "go " * 20), served_model("z", tiny_zimage_dir, EngineSettings())])
    work = engine.work("image", ImageRequest(prompt="a cat", size=(64, 64), steps=200, seed=1))
    assert wait_for(lambda: engine.registry.lookup("z").in_use == 1, timeout=120)  # loaded and stepping
    events = list(engine.submit(ChatRequest([Message("user", "hi")], Sampling(max_tokens=40))))
    assert isinstance(events[-1], Finish) and events[-1].usage.completion_tokens >= 10
    assert work.result(timeout=0) is None  # still denoising
    work.cancel()


def test_a_cancelled_image_stops_between_steps_and_frees_its_model(tiny_zimage_dir, make_engine):
    engine = make_engine([served_model("z", tiny_zimage_dir, EngineSettings())])
    model = engine.registry.lookup("z")
    work = engine.work("image", ImageRequest(prompt="a cat", size=(64, 64), steps=500, seed=1))
    assert wait_for(lambda: model.in_use == 1, timeout=120)
    work.cancel()
    assert wait_for(lambda: model.in_use == 0 and engine.stats()["active_requests"] == 0, timeout=60)
    assert generate(engine).images[0].size == (64, 64)  # the engine goes on


def test_keep_alive_zero_unloads_the_image_model_once_done(tiny_zimage_dir, make_engine):
    engine = make_engine([served_model("z", tiny_zimage_dir, EngineSettings())])
    generate(engine, keep_alive=0)
    assert wait_for(lambda: engine.registry.lookup("z").state == "unloaded", timeout=30)
    assert generate(engine).images[0].size == (64, 64)  # loaded again on demand


def test_mflux_s_saved_layout_loads_as_the_same_model(tiny_zimage_dir, tmp_path, make_engine):
    """An ``mflux-save`` export (no model_index.json; its family and preset read from its name)."""
    original = make_engine([served_model("z", tiny_zimage_dir, EngineSettings())])
    expected = np.asarray(generate(original).images[0])
    saved = tmp_path / "Z-Image-Turbo-mflux"
    original.registry.lookup("z").loaded.model.save_model(str(saved))
    for part in ("transformer", "text_encoder"):  # the shrunk sizes (a real export keeps mflux's own)
        shutil.copy(tiny_zimage_dir / part / "config.json", saved / part / "config.json")
    assert not (saved / "model_index.json").exists() and imagegen.detect(saved)
    model = served_model("saved", saved, EngineSettings())
    assert model.setup.preset == "z-image-turbo"
    again = make_engine([model])
    assert np.array_equal(np.asarray(generate(again).images[0]), expected)


def test_quantized_at_load(tiny_zimage_dir, make_engine):
    spec = ModelSpec(model=str(tiny_zimage_dir), quantize=8)
    engine = make_engine([served_model("z8", tiny_zimage_dir, EngineSettings(), spec)])
    result = generate(engine)
    assert result.images[0].size == (64, 64)
    assert engine.models()[0].dtype == "8-bit"


def test_an_unsupported_size_is_refused_before_any_work(tiny_zimage_dir, make_engine):
    engine = make_engine([served_model("z", tiny_zimage_dir, EngineSettings())])
    with pytest.raises(InvalidRequest) as err:
        engine.work("image", ImageRequest(prompt="x", size=(100, 64)))
    assert err.value.param == "size"


def test_partial_images_are_spread_over_the_steps_run():
    assert partial_steps(2, 0, 4) == {0, 2}
    assert partial_steps(1, 0, 2) == {0}
    assert partial_steps(3, 0, 2) == {0}  # never after the last step: the finished image comes then
    assert partial_steps(0, 0, 9) == set()
    assert partial_steps(2, 2, 8) <= set(range(2, 7))  # an edit starts part-way


def test_quality_sets_the_steps_and_sizes_are_checked():
    assert [steps_for(ImageRequest("x", quality=q), 9) for q in ("auto", "low", "medium", "high")] == [9, 4, 9, 18]
    assert steps_for(ImageRequest("x", quality="low", steps=3), 9) == 3
    check_size((1024, 1536))
    for size in ((1000, 1024), (32, 32), (4096, 1024)):
        with pytest.raises(InvalidRequest):
            check_size(size)


def test_concurrent_images_take_turns(tiny_zimage_dir, make_engine):
    engine = make_engine([served_model("z", tiny_zimage_dir, EngineSettings())])
    results = {}

    def run(seed):
        results[seed] = generate(engine, seed=seed)

    threads = [threading.Thread(target=run, args=(s,)) for s in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    alone = generate(engine, seed=2)
    assert np.array_equal(np.asarray(results[2].images[0]), np.asarray(alone.images[0]))
    assert not np.array_equal(np.asarray(results[1].images[0]), np.asarray(alone.images[0]))

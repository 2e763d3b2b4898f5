"""A vision model pulled from (a fake) Hugging Face Hub: its processor files come too, and it serves images."""

from __future__ import annotations

import base64

from mlxcli.core.collect import collect
from mlxcli.core.request import ChatRequest, Message, Sampling
from mlxcli.engine.engine import EngineSettings
from mlxcli.engine.kinds import prepare
from mlxcli.engine.settings import ModelSpec
from mlxcli.models import pull
from mlxcli.server.images import from_url
from tests.models.test_hub import hf_env  # noqa: F401  (the fake hub fixture)
from tests.support.vision_models import noise_png


def test_a_pulled_vision_model_loads_and_reads_images(hf_env, tiny_vlm_dir, home, run_engine):  # noqa: F811
    files = {p.name: p.read_bytes() for p in tiny_vlm_dir.iterdir()}
    hf_env.add_repo("tiny-org/tiny-vl", files)
    resolved = pull("tiny-org/tiny-vl", home=home)
    assert hf_env.downloaded_files("tiny-org/tiny-vl") == set(files)  # preprocessor_config.json included

    settings = EngineSettings(temperature=0.0)
    served = prepare(ModelSpec(model="tiny-org/tiny-vl"), settings)
    engine = run_engine([served], settings)
    status = engine.models()[0]
    assert status.vision and status.name == "tiny-org/tiny-vl" and resolved.path.is_dir()

    def ask(seed: int) -> str:
        image = from_url("data:image/png;base64," + base64.b64encode(noise_png(seed)).decode(), "image")
        request = ChatRequest([Message("user", "What is this?", images=[image])], Sampling(max_tokens=6))
        return collect(engine.submit(request)).text

    assert ask(1) != ask(2) and ask(1) == ask(1)

"""Image pipelines pulled from (a fake) Hugging Face Hub: their component folders only, and they generate."""

from __future__ import annotations

import pytest

from mlxcli.core.errors import ModelError
from mlxcli.core.images import ImageRequest
from mlxcli.engine.engine import EngineSettings
from mlxcli.engine.kinds import prepare
from mlxcli.engine.settings import ModelSpec
from mlxcli.models import list_local_models, pull, resolve_model
from tests.models.test_hub import hf_env  # noqa: F401  (the fake hub fixture)

# What such repos also hold at their top: the whole model again in one file (FLUX.1's), and a card.
TOP = {"z_image_turbo_bf16.safetensors": b"\0" * 4096, "README.md": b"# Z-Image\n", "assets/example.png": b"png"}


def repo_files(folder) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_pulled_pipeline_fetches_its_components_and_generates(hf_env, tiny_zimage_dir, home, run_engine):  # noqa: F811
    files = repo_files(tiny_zimage_dir)
    hf_env.add_repo("Tongyi-MAI/Z-Image-Turbo", {**files, **TOP})
    resolved = pull("Tongyi-MAI/Z-Image-Turbo", home=home)
    assert hf_env.downloaded_files("Tongyi-MAI/Z-Image-Turbo") == set(files)  # nothing at the top but model_index.json
    assert [m.name for m in list_local_models(home) if m.source == "hf"] == ["Tongyi-MAI/Z-Image-Turbo"]

    settings = EngineSettings()
    served = prepare(ModelSpec(model="Tongyi-MAI/Z-Image-Turbo"), settings)
    assert served.setup.preset == "z-image-turbo" and served.capabilities == ("image",)
    engine = run_engine([served], settings)
    result = engine.work("image", ImageRequest("a cat", size=(64, 64), steps=1)).result(timeout=300)
    assert result.images[0].size == (64, 64) and resolved.path.is_dir()


def test_an_interrupted_pipeline_download_is_not_served(hf_env, tiny_zimage_dir, home):  # noqa: F811
    files = repo_files(tiny_zimage_dir)
    hf_env.add_repo("Tongyi-MAI/Z-Image-Turbo", files)
    hf_env.broken.add(("Tongyi-MAI/Z-Image-Turbo", "vae/diffusion_pytorch_model.safetensors"))
    with pytest.raises(ModelError, match="Z-Image-Turbo"):
        pull("Tongyi-MAI/Z-Image-Turbo", home=home)
    with pytest.raises(ModelError):
        resolve_model("Tongyi-MAI/Z-Image-Turbo", home=home, download=False)
    hf_env.broken.clear()
    assert pull("Tongyi-MAI/Z-Image-Turbo", home=home).path.is_dir()  # a second pull completes it


def test_a_local_pipeline_directory_is_served_in_place(tiny_zimage_dir, home):
    resolved = resolve_model(str(tiny_zimage_dir), home=home)
    assert resolved.source == "local" and resolved.path == tiny_zimage_dir.resolve()

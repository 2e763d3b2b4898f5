"""Image-generation models: mflux's pipelines (Z-Image, FLUX.1, FLUX.1 Kontext, Qwen-Image, Qwen-Image-Edit).

A directory is one when its ``model_index.json`` names a pipeline of a family below (a diffusers repo as
the Hub has it), or when it holds mflux's own saved layout (``transformer/`` and ``vae/`` of
safetensors, no config.json: an ``mflux-save`` export, 4- or 8-bit). The family's preset (mflux's
``--model`` names: ``z-image-turbo``, ``schnell``, ``dev``, ...) is the one the model's names say, else the
family's first; a config file's ``image_preset`` names it outright. It sets the default number of steps
and the guidance.

Weights load through mflux (``quantize`` 3 to 8 bits at load, or as saved). Z-Image's transformer and
text encoder are built at the sizes their config.json files give (mflux builds them at the released
sizes, which those files give too), so a small model of the same architecture loads as a large one does.

Each loaded pipeline gets one in-loop callback (``Pause``): inside a generation run by the worker
(work.py) it hands control back to the engine loop after each denoising step.
"""

from __future__ import annotations

import inspect
import json
import logging
import time
from dataclasses import dataclass
from importlib import import_module
from pathlib import Path
from typing import Any, Sequence

from mlxcli.core.errors import ModelError
from mlxcli.engine.loading import LoadedModel

log = logging.getLogger("mlxcli.engine")

INSTALL_HINT = "run `mlxcli install imagegen` (mflux without its pinned torch and CUDA wheels)"
QUANTIZE_BITS = (3, 4, 5, 6, 8)  # what mflux quantizes to at load
SIZE_STEP = 16  # the VAE's 8x and the transformer's 2x2 patches
MIN_SIDE, MAX_SIDE = 64, 2048


@dataclass(frozen=True)
class Family:
    name: str
    pipelines: tuple[str, ...]  # model_index.json's _class_name for this family
    presets: tuple[str, ...]  # mflux's model names (AVAILABLE_MODELS keys), the default first
    pipeline: str  # module:class of mflux's model
    latents: str  # module:class of its latent creator (unpacks latents for a partial image)
    edits: str  # how an edit passes its image: "img2img" (the start, noised), "reference" or "references"
    default_size: int = 1024


FAMILIES = (
    Family("z-image", ("ZImagePipeline",), ("z-image-turbo", "z-image"),
           "mflux.models.z_image.variants.z_image:ZImage",
           "mflux.models.z_image.latent_creator:ZImageLatentCreator", "img2img"),
    Family("flux", ("FluxPipeline",), ("schnell", "dev", "krea-dev"),
           "mflux.models.flux.variants.txt2img.flux:Flux1",
           "mflux.models.flux.latent_creator.flux_latent_creator:FluxLatentCreator", "img2img"),
    Family("flux-kontext", ("FluxKontextPipeline",), ("dev-kontext",),
           "mflux.models.flux.variants.kontext.flux_kontext:Flux1Kontext",
           "mflux.models.flux.latent_creator.flux_latent_creator:FluxLatentCreator", "reference"),
    Family("qwen-image", ("QwenImagePipeline",), ("qwen-image",),
           "mflux.models.qwen.variants.txt2img.qwen_image:QwenImage",
           "mflux.models.qwen.latent_creator.qwen_latent_creator:QwenLatentCreator", "img2img"),
    Family("qwen-image-edit", ("QwenImageEditPipeline", "QwenImageEditPlusPipeline"), ("qwen-image-edit", "qwen-image-edit-2511"),
           "mflux.models.qwen.variants.edit.qwen_image_edit:QwenImageEdit",
           "mflux.models.qwen.latent_creator.qwen_latent_creator:QwenLatentCreator", "references"),
)


@dataclass(frozen=True)
class ImageSetup:
    """What an image model's requests are read with (``ServedModel.setup``)."""

    family: Family
    preset: str  # mflux's model name
    steps: int  # the preset's default number of denoising steps
    guidance: float | None  # its default guidance (None: the model takes none)
    quantize: int | None  # bits asked for at load (None: as saved)

    @property
    def default_size(self) -> tuple[int, int]:
        return self.family.default_size, self.family.default_size


def pipeline_class(path: Path) -> str | None:
    """model_index.json's ``_class_name``, if the directory has one."""
    try:
        index = json.loads((path / "model_index.json").read_text())
    except (OSError, ValueError):
        return None
    name = index.get("_class_name") if isinstance(index, dict) else None
    return name if isinstance(name, str) else None


def is_mflux_saved(path: Path) -> bool:
    return all(any((path / part).glob("*.safetensors")) for part in ("transformer", "vae"))


def detect(path: Path) -> bool:
    """A diffusion pipeline (``setup`` says whether its family is served here), or mflux's saved layout."""
    if pipeline_class(path) is not None:
        return True
    return not (path / "config.json").exists() and is_mflux_saved(path)


def setup(path: Path, names: Sequence[str], preset: str | None = None, quantize: int | None = None) -> ImageSetup:
    """The family and preset of the image model at ``path`` (``names``: the names it is served under and
    was asked for, most telling first). Raises ModelError when mflux is missing or nothing says which."""
    try:
        from mflux.cli.defaults import defaults
        from mflux.models.common.config.model_config import AVAILABLE_MODELS
    except ImportError as exc:
        raise ModelError(f"{path} is an image-generation model, and mflux is not installed: {INSTALL_HINT} ({exc})") from None
    if quantize is not None and quantize not in QUANTIZE_BITS:
        raise ModelError(f"quantize: {quantize} bits is not one of {', '.join(map(str, QUANTIZE_BITS))}")
    family = _family(path, names, preset, AVAILABLE_MODELS)
    chosen = preset or _preset(family, names, AVAILABLE_MODELS, path)
    if chosen not in family.presets:
        raise ModelError(f"image_preset {chosen!r} is not a {family.name} preset ({', '.join(family.presets)})")
    config = AVAILABLE_MODELS[chosen]
    guidance = None
    if config.supports_guidance is not False:
        guidance = defaults.GUIDANCE_SCALE_KONTEXT if family.edits == "reference" else defaults.GUIDANCE_SCALE
    return ImageSetup(family, chosen, defaults.model_inference_steps(chosen), guidance, quantize)


def _family(path: Path, names: Sequence[str], preset: str | None, available: dict) -> Family:
    name = pipeline_class(path)
    if name is not None:
        family = next((f for f in FAMILIES if name in f.pipelines), None)
        if family is None:
            served = ", ".join(p for f in FAMILIES for p in f.pipelines)
            raise ModelError(f"{path}: a {name}, which mflux does not run here (image pipelines served: {served})")
        return family
    for family in FAMILIES:  # mflux's saved layout: its names (or the preset asked for) say which
        if preset in family.presets or any(_matches(n, p, available) for n in names for p in family.presets):
            return family
    raise ModelError(f"{path}: an mflux model directory whose family its names do not tell; set image_preset "
                     f"in a config file to one of {', '.join(p for f in FAMILIES for p in f.presets)}")


def _preset(family: Family, names: Sequence[str], available: dict, path: Path) -> str:
    for preset in sorted(family.presets, key=len, reverse=True):  # "z-image-turbo" before "z-image"
        if any(_matches(n, preset, available) for n in names):
            return preset
    if family.name == "flux":  # FLUX.1-dev embeds its guidance; schnell does not
        try:
            embeds = json.loads((path / "transformer" / "config.json").read_text()).get("guidance_embeds")
        except (OSError, ValueError, AttributeError):
            embeds = None
        if embeds:
            return "dev"
    return family.presets[0]


def _matches(name: str, preset: str, available: dict) -> bool:
    """``name`` (a repo id, a directory, a served name) is the preset's repo or spells one of its aliases."""
    config = available[preset]
    if name.strip("/").lower() == config.model_name.lower():
        return True
    base = name.rstrip("/").rsplit("/", 1)[-1].lower().replace("_", "-")
    return any(alias.lower() in base for alias in config.aliases)


def load_class(target: str) -> Any:
    module, _, name = target.partition(":")
    return getattr(import_module(module), name)


def load(name: str, path: Path, setup: ImageSetup) -> LoadedModel:
    """The pipeline with its weights (engine thread)."""
    from mflux.models.common.config.model_config import AVAILABLE_MODELS

    start = time.perf_counter()
    config = AVAILABLE_MODELS[setup.preset]
    try:
        if setup.family.name == "z-image":
            pipeline = _z_image(path, config, setup.quantize)
        else:
            pipeline = load_class(setup.family.pipeline)(quantize=setup.quantize, model_path=str(path), model_config=config)
    except Exception as exc:  # mflux raises many types for a broken directory
        raise ModelError(f"cannot load the image model {name!r} from {path}: {type(exc).__name__}: {exc}") from exc
    pipeline.callbacks.register(Pause())
    import mlx.core as mx
    from mlx.utils import tree_flatten

    weights = [v for _, v in tree_flatten(pipeline.parameters())]
    mx.eval(weights)
    bits = getattr(pipeline, "bits", None)
    loaded = LoadedModel(
        name=name,
        path=path,
        model=pipeline,
        tokenizer=None,
        config={"family": setup.family.name, "preset": setup.preset},
        context_window=0,
        dtype=f"{bits}-bit" if bits else "bfloat16",
        load_seconds=time.perf_counter() - start,
        weight_bytes=sum(v.nbytes for v in weights),
    )
    log.info("loaded %s from %s in %.1fs: %s %s, %s", name, path, loaded.load_seconds, setup.family.name,
             setup.preset, loaded.dtype)
    return loaded


def _z_image(path: Path, config: Any, quantize: int | None) -> Any:
    """mflux's ZImageInitializer.init, with the transformer and text encoder at their config.json sizes."""
    import mlx.nn as nn
    from mflux.models.common.compute_precision import ComputePrecision
    from mflux.models.common.vae.block_decoder import VAEBlockDecoder
    from mflux.models.z_image.model.z_image_text_encoder.text_encoder import TextEncoder
    from mflux.models.z_image.model.z_image_transformer.transformer import ZImageTransformer
    from mflux.models.z_image.model.z_image_vae.vae import VAE
    from mflux.models.z_image.variants.z_image import ZImage
    from mflux.models.z_image.z_image_initializer import ZImageInitializer as Init

    model = ZImage.__new__(ZImage)
    nn.Module.__init__(model)
    Init._init_config(model, config)
    weights = Init._load_weights(str(path))
    Init._init_tokenizers(model, str(path))
    model.vae = VAE()
    model.vae.decode_mode = VAEBlockDecoder.LOW_MEMORY
    model.transformer = _sized(ZImageTransformer, path / "transformer" / "config.json")
    model.text_encoder = _sized(TextEncoder, path / "text_encoder" / "config.json")
    Init._apply_weights(model, weights, quantize)
    model.lora_paths, model.lora_scales = None, None
    model.float32 = False
    model.transformer.set_float32(False)
    model.compute_precision = ComputePrecision(None)
    return model


def _sized(cls: type, config_file: Path) -> Any:
    """``cls`` built with the sizes its config.json gives (the keys its constructor takes), else mflux's."""
    try:
        config = json.loads(config_file.read_text())
    except (OSError, ValueError):
        return cls()
    taken = inspect.signature(cls).parameters
    return cls(**{k: v for k, v in config.items() if k in taken and not k.startswith("_")})


class Pause:
    """mflux's in-loop callback: after each denoising step, inside a generation the worker runs as a
    greenlet, evaluate the step and hand control back to the engine loop (work.py: ``Denoising``)."""

    def call_before_loop(self, latents: Any, config: Any = None, **_: Any) -> None:
        if config is not None and getattr(config, "_time_steps", False) is None:
            # mflux would draw a progress bar of the loop on stderr (the server's log)
            from tqdm import tqdm

            config._time_steps = tqdm(range(config.init_time_step, config.num_inference_steps), disable=True)
        self._pause(latents, -1)

    def call_in_loop(self, t: int, latents: Any, config: Any, **_: Any) -> None:
        self._pause(latents, t, config)

    @staticmethod
    def _pause(latents: Any, step: int, config: Any = None) -> None:
        import greenlet
        import mlx.core as mx

        here = greenlet.getcurrent()
        if here.parent is None:  # called outside the worker (mflux's own CLI, a test): run straight through
            return
        mx.eval(latents)
        here.parent.switch(("step", step, latents, config))

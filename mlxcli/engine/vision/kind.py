"""``VISION``: mlx-vlm models (a config with a vision tower), which read images beside text.

A text model in every other way (tokenizer, template, output format), plus the image processor
(read when the model is configured) that turns a rendered prompt and its images into the model's
inputs on the caller's thread; its weights load through mlx-vlm, and its jobs run one at a time.
"""

from __future__ import annotations

import logging
from functools import partial
from typing import TYPE_CHECKING

from mlxcli.engine import prompt
from mlxcli.engine.text.kind import TextKind
from mlxcli.engine.vision import model as vision
from mlxcli.engine.vision.language import VisionLanguage
from mlxcli.engine.vision.runner import VisionBatch, VisionSolo

if TYPE_CHECKING:
    import mlx.core as mx

    from mlxcli.core.request import ChatRequest
    from mlxcli.engine.loading import LoadedModel, ModelDir
    from mlxcli.engine.prompt_cache import PromptCache
    from mlxcli.engine.runner import Runner
    from mlxcli.engine.served import ServedModel
    from mlxcli.engine.settings import EngineSettings, ModelSpec

log = logging.getLogger("mlxcli.engine")


class VisionKind(TextKind):
    name = "vision"
    capabilities = ("chat", "vision")

    def detect(self, directory: "ModelDir") -> bool:
        return vision.is_vision(directory.config)

    def setup(self, directory: "ModelDir"):
        return vision.processor_of(directory.path, directory.config)

    def loader(self, directory: "ModelDir", name: str, tokenizer, limit: int | None, settings: "EngineSettings"):
        # mlx-vlm's models are never sharded: --distributed refuses them (peers.py)
        return partial(vision.load, name, directory.path, context_length=limit, tokenizer=tokenizer, encoder_bytes=settings.vision_cache_bytes)

    def speculation(self, spec: "ModelSpec", settings: "EngineSettings", name: str) -> None:
        if spec.speculative == "ngram" or spec.draft_model or settings.speculative == "ngram" or settings.draft_model:
            log.warning("%s: speculative decoding is off: it does not run vision models (their caches carry each row's images and positions)", name)
        return None

    def render(self, model: "ServedModel", request: "ChatRequest", boundaries: bool) -> prompt.RenderedPrompt:
        rendered = prompt.render(model.tokenizer, request, model.format, boundaries=boundaries and model.checkpoints is not False)
        return vision.inputs(model.setup, rendered, vision.images_of(request))

    def runner(self, model: "ServedModel", loaded: "LoadedModel", settings: "EngineSettings", prompt_cache: "PromptCache", stream: "mx.Stream") -> "Runner":
        batches = isinstance(loaded.model, VisionLanguage) and settings.kv_bits is None
        return (VisionBatch if batches else VisionSolo)(model, loaded, settings, prompt_cache, stream)


VISION = VisionKind()

"""``IMAGEGEN``: mflux's image-generation pipelines (model.py). They answer image requests only
(generations and edits), one denoising step per pass of the engine loop (work.py)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from mlxcli.core.engine import ModelDetails
from mlxcli.core.errors import InvalidRequest
from mlxcli.core.images import MAX_STEPS, ImageRequest
from mlxcli.engine.imagegen import model as imagegen
from mlxcli.engine.imagegen.work import ImageJob, ImageWorker, new_job
from mlxcli.engine.kind import Kind, other_names
from mlxcli.engine.served import ServedModel
from mlxcli.models.info import describe_dir

if TYPE_CHECKING:
    from mlxcli.engine.loading import ModelDir
    from mlxcli.engine.registry import ModelRegistry
    from mlxcli.engine.settings import EngineSettings, ModelSpec

log = logging.getLogger("mlxcli.engine")

TASK = "image"


class ImageGenKind(Kind):
    name = "imagegen"
    task = TASK

    def detect(self, directory: "ModelDir") -> bool:
        return imagegen.detect(directory.path)

    def serve(self, directory: "ModelDir", name: str, spec: "ModelSpec", settings: "EngineSettings", ids: Sequence[str]) -> ServedModel:
        path = directory.path
        names = [n for n in (*ids, spec.model, name, path.name) if n]
        setup = imagegen.setup(path, names, spec.image_preset, spec.quantize)
        log.info("%s: image generation, %s (%s), %d steps by default", name, setup.family.name, setup.preset, setup.steps)
        return ServedModel(
            name=name,
            tokenizer=None,
            context_window=0,
            load=lambda: imagegen.load(name, path, setup),
            aliases=tuple(spec.aliases),
            ids=other_names(name, ids),
            spec=spec,
            details=_details(path, setup),
            kind=self.name,
            capabilities=(TASK,),
            setup=setup,
        )

    def refusal(self, model: ServedModel) -> str:
        return (f"The model `{model.name}` is a {model.task} model: it does not generate images. Serve an image "
                "model beside it (e.g. --model Tongyi-MAI/Z-Image-Turbo; see `mlxcli install imagegen`).")

    def render(self, model: ServedModel, request, boundaries: bool):
        raise InvalidRequest(f"The model `{model.name}` is an image-generation model: it answers image requests "
                             "(/v1/images/generations, /v1/images/edits), not chat.", param="model")

    def prepare(self, model: ServedModel, request: ImageRequest) -> ImageJob:
        setup: imagegen.ImageSetup = model.setup
        size = request.size or _edit_size(request) or setup.default_size
        check_size(size)
        return new_job(request, model, setup, size, steps_for(request, setup.steps))

    def worker(self, registry: "ModelRegistry") -> ImageWorker:
        return ImageWorker(registry)


def steps_for(request: ImageRequest, default: int) -> int:
    """The request's steps, else its quality's share of the model's default."""
    if request.steps is not None:
        return request.steps
    if request.quality == "low":
        return max(1, round(default / 2))
    if request.quality in ("high", "hd"):
        return min(MAX_STEPS, default * 2)
    return default


def check_size(size: tuple[int, int]) -> None:
    width, height = size
    step, lo, hi = imagegen.SIZE_STEP, imagegen.MIN_SIDE, imagegen.MAX_SIDE
    if not (lo <= width <= hi and lo <= height <= hi) or width % step or height % step:
        raise InvalidRequest(f"The size {width}x{height} is not supported by this model: width and height must be "
                             f"multiples of {step} from {lo} to {hi} (e.g. 1024x1024, 1536x1024).", param="size")


def _edit_size(request: ImageRequest) -> tuple[int, int] | None:
    """An edit's default size: its image's, rounded down to the model's step (at least the smallest side)."""
    if not request.edit:
        return None
    first = request.images[0]
    step, lo = imagegen.SIZE_STEP, imagegen.MIN_SIDE
    return max(lo, first.width // step * step), max(lo, first.height // step * step)


def _details(path: Path, setup: imagegen.ImageSetup) -> ModelDetails:
    """Its parameters and size: the component folders' (a pipeline has no weights at its top)."""
    parts = [describe_dir(p, {}) for p in sorted(path.iterdir()) if p.is_dir() and not p.name.startswith(".")]
    top = describe_dir(path, {})
    counted = [p.parameters for p in parts if p.parameters]
    return ModelDetails(
        family=setup.family.name,
        parameters=sum(counted) if counted else None,
        quantization=f"{setup.quantize}-bit" if setup.quantize else None,
        size_bytes=top.size_bytes + sum(p.size_bytes for p in parts),
        modified_at=max((m for m in [top.modified_at, *(p.modified_at for p in parts)] if m), default=None),
        digest=top.digest,
        config={"preset": setup.preset, "family": setup.family.name},
    )


IMAGEGEN = ImageGenKind()

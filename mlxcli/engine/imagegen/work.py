"""Image requests on the engine thread, one denoising step per pass of the engine loop.

mflux's ``generate_image`` runs its whole loop in one call: prompt encoding, the denoising steps,
the VAE decode. The worker runs that call as a greenlet (``Denoising``) on the engine thread itself, and
mflux's in-loop callback (model.py: ``Pause``) switches back to the engine loop after each step: each
``advance`` resumes the generation for one step, then the loop decodes a token for the chat streams
beside it. MLX state never leaves the engine thread (a greenlet switches stacks, not threads), and every
family mflux runs through that loop steps the same way.

A partial image (streaming) is a VAE decode of the latents after a step, done in a pass of its own. An
edit with a mask keeps the original pixels where the mask is opaque: the model repaints the image from
its noised latents (img2img) and the result is composited under the mask.
"""

from __future__ import annotations

import random
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from mlxcli.core.images import GeneratedImages, ImageRequest, PartialImage
from mlxcli.engine.imagegen.model import ImageSetup, load_class
from mlxcli.engine.job import WorkJob
from mlxcli.engine.worker import Worker

MAX_SEED = 2**31 - 1


@dataclass(eq=False)
class ImageJob(WorkJob):
    steps: int = 1
    width: int = 0
    height: int = 0
    seeds: list[int] = field(default_factory=list)
    strength: float | None = None  # mflux's image_strength (how much of the image is kept), for img2img edits
    partial_after: frozenset[int] = frozenset()  # the steps (0-based) after which a partial image is sent
    finished: list[Any] = field(default_factory=list)  # the images done so far
    running: "Denoising | None" = None  # the image in progress
    due: tuple[Any, Any, int] | None = None  # (latents, mflux config, step) of a partial image to decode next
    partials_sent: int = 0  # of the image in progress

    def close(self) -> None:
        if self.running is not None:
            self.running.stop()
            self.running = None


class Denoising:
    """One ``generate_image`` call as a greenlet: each ``resume`` runs it to the end of its next step."""

    def __init__(self, run: Callable[[], Any]):
        import greenlet  # the imagegen extra's: the engine imports this module without it

        self._greenlet = greenlet.greenlet(run)

    def resume(self) -> tuple:
        """``("step", step, latents, config)`` after a step (step -1: before the first), else ``("done", image)``."""
        out = self._greenlet.switch()
        return ("done", out) if self._greenlet.dead else out

    def stop(self) -> None:
        """Unwind the call where it paused (its ``finally`` blocks run)."""
        if not self._greenlet.dead:
            self._greenlet.throw()  # GreenletExit


def partial_steps(count: int, first: int, steps: int) -> frozenset[int]:
    """``count`` steps, evenly spread over those run (``first`` .. ``steps - 1``), after which a partial
    image goes out; never after the last (the finished image follows it)."""
    run = steps - first
    return frozenset(first + round(k * run / (count + 1)) - 1 for k in range(1, count + 1)) - {steps - 1, first - 1}


def new_job(request: ImageRequest, model: Any, setup: ImageSetup, size: tuple[int, int], steps: int) -> ImageJob:
    """The job of a checked request (kind.py checks it)."""
    seed = request.seed if request.seed is not None else random.randint(0, MAX_SEED)
    strength = None
    if request.edit and setup.family.edits == "img2img":
        changed = request.strength if request.strength is not None else (0.9 if request.mask is not None else 0.6)
        strength = 1.0 - changed  # mflux's image_strength: the share of the schedule the image skips
    first = max(1, int(steps * strength)) if strength else 0
    job = ImageJob(request=request, model=model, steps=steps, width=size[0], height=size[1],
                   seeds=[(seed + i) % (MAX_SEED + 1) for i in range(request.n)], strength=strength)
    job.partial_after = partial_steps(request.partial_images, first, steps)
    return job


class ImageWorker(Worker):
    """One denoising step (or one partial image) of an image request per pass."""

    name = "image generation"

    def advance(self, job: ImageJob) -> GeneratedImages | None:
        if job.due is not None:
            self._send_partial(job)
            return None
        if job.running is None:
            job.running = Denoising(lambda: _generate(job, len(job.finished)))
            job.partials_sent = 0
        kind, *rest = job.running.resume()
        if kind == "step":
            step, latents, config = rest
            if step in job.partial_after:
                job.due = (latents, config, step)
            return None
        job.running = None
        job.finished.append(_masked(job, rest[0].image))
        if len(job.finished) < job.request.n:
            return None
        return GeneratedImages(job.finished, job.seeds, job.steps, job.width, job.height)

    def _send_partial(self, job: ImageJob) -> None:
        latents, config, step = job.due
        job.due = None
        setup: ImageSetup = job.model.setup
        pipeline = job.model.loaded.model
        from mflux.utils.image_util import ImageUtil

        unpacked = load_class(setup.family.latents).unpack_latents(latents=latents, height=config.height, width=config.width)
        image = ImageUtil.to_pil(pipeline.vae.decode(unpacked))
        job.report(PartialImage(_masked(job, image), len(job.finished), job.partials_sent, step + 1, job.steps))
        job.partials_sent += 1


def _generate(job: ImageJob, index: int) -> Any:
    """mflux's generate_image for the ``index``-th image (runs inside the greenlet)."""
    request: ImageRequest = job.request
    setup: ImageSetup = job.model.setup
    pipeline = job.model.loaded.model
    arguments: dict[str, Any] = {"seed": job.seeds[index], "prompt": request.prompt, "num_inference_steps": job.steps,
                                 "width": job.width, "height": job.height}
    guidance = request.guidance if request.guidance is not None else setup.guidance
    if guidance is not None:
        arguments["guidance"] = guidance
    if request.negative_prompt:
        arguments["negative_prompt"] = request.negative_prompt
    with tempfile.TemporaryDirectory(prefix="mlxcli-image-") as folder:
        paths = []
        for i, image in enumerate(request.images):  # mflux reads its images from files
            paths.append(str(Path(folder) / f"{i}.png"))
            image.image.save(paths[-1])
        if paths and setup.family.edits == "references":
            arguments["image_paths"] = paths
        elif paths:
            arguments["image_path"] = paths[0]
            if setup.family.edits == "img2img":
                arguments["image_strength"] = job.strength
        return pipeline.generate_image(**arguments)


def _masked(job: ImageJob, image: Any) -> Any:
    """The generated image where the mask lets it change, the original elsewhere."""
    mask = job.request.mask
    if mask is None:
        return image
    from PIL import Image

    original = job.request.images[0].image.resize(image.size, Image.Resampling.BICUBIC)
    return Image.composite(image, original, mask.resize(image.size, Image.Resampling.BILINEAR))

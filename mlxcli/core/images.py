"""The neutral image-generation request and its answer, between the providers (or chat, bench) and the engine.

Images are PIL images, typed loosely so that core imports no imaging library (as ``ImageInput``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mlxcli.core.request import ImageInput, new_id

MAX_IMAGES = 10  # images one request asks for (OpenAI's limit on ``n``)
MAX_PARTIAL_IMAGES = 3  # partial images one streamed image sends (OpenAI's limit)
MAX_STEPS = 200
QUALITIES = ("auto", "low", "medium", "high", "standard", "hd")


@dataclass
class ImageRequest:
    """Generate ``n`` images from ``prompt``; with ``images``, edit the first (a mask limits where)."""

    prompt: str
    model: str | None = None
    n: int = 1
    size: tuple[int, int] | None = None  # (width, height); None: the model's default, or an edit's image size
    quality: str = "auto"  # one of QUALITIES: the number of steps, relative to the model's default
    steps: int | None = None  # denoising steps, said outright (an extension: wins over ``quality``)
    seed: int | None = None  # the first image's seed; the next ones count up from it (None: random)
    guidance: float | None = None  # an extension; None: the model's default
    negative_prompt: str | None = None  # an extension, for models with guidance
    images: list[ImageInput] = field(default_factory=list)  # an edit's images: the first is edited
    mask: Any = None  # a PIL "L" image the size of the first image: 255 where it may change, 0 where it stays
    strength: float | None = None  # how far an edit moves from its image, 0..1 (an extension; None: 0.9 under a mask, else 0.6)
    partial_images: int = 0  # images of each one in progress to send before it is done (streaming)
    keep_alive: float | None = None  # as ChatRequest.keep_alive
    request_id: str = field(default_factory=lambda: new_id("req_"))

    @property
    def edit(self) -> bool:
        return bool(self.images)


@dataclass(frozen=True)
class PartialImage:
    """An image in progress: the ``index``-th image of the request after ``step`` of ``steps``."""

    image: Any
    index: int
    partial_index: int  # 0, 1, ... for this image
    step: int
    steps: int


@dataclass(frozen=True)
class GeneratedImages:
    images: list[Any]  # PIL RGB images, one per image asked for
    seeds: list[int]
    steps: int  # denoising steps each took
    width: int
    height: int
    prompt_tokens: int = 0

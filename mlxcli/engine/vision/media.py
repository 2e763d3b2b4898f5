"""A prompt's images as the engine reads them: each image's placeholder tokens and its own model inputs.

The processor expands each image's placeholder into as many tokens as the image has feature rows, and
gives the pixel values of all the images together. Here (numpy, on the caller's thread) they are told
apart per image, so that the engine encodes each image alone (and keeps its features by digest:
encoder.py) and puts its rows where its tokens are; and each image's identity, its digest, keys its
tokens in the prompt cache (``RenderedPrompt.opaque``): two images never share a KV cache.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from mlxcli.core.request import ImageInput

GRID = "image_grid_thw"  # Qwen-VL's patch grid per image: (temporal, height, width) patches


@dataclass(frozen=True)
class Picture:
    """One image of a prompt: its placeholder tokens ``[start, end)`` and its own inputs (pixel values, grid)."""

    digest: str
    start: int
    end: int
    inputs: dict[str, np.ndarray]

    @property
    def identity(self) -> int:
        """What the prompt cache keys its tokens by: never a token id (those are not negative)."""
        return -1 - int(self.digest, 16)


@dataclass(frozen=True)
class Media:
    inputs: dict[str, np.ndarray]  # every image's, as the processor gave them (mlx-vlm's own generation)
    pictures: list[Picture] | None  # in prompt order; None: not told apart (a processor this does not know)


def media_of(tokens: list[int], images: list[ImageInput], inputs: dict[str, Any], image_token: int, merge: int) -> Media:
    """``inputs`` (the processor's, for ``images`` in order) told apart per image; ``merge``: the patches
    (per side) that become one token, for a processor that gives a patch grid per image.

    Raises ValueError when the placeholders do not match the images (a processor this does not know)."""
    where = [i for i, t in enumerate(tokens) if t == image_token]
    grid = inputs.get(GRID)
    if grid is not None:
        counts = [int(np.prod(g)) // (merge * merge) for g in grid]
    elif where and len(where) % len(images) == 0:
        counts = [len(where) // len(images)] * len(images)  # fixed-size images: the same tokens each
    else:
        counts = []
    if len(counts) != len(images) or sum(counts) != len(where):
        raise ValueError(f"{len(where)} image tokens for {len(images)} images")
    pictures, first = [], 0
    for image, count, split in zip(images, counts, _per_image(inputs, len(images))):
        start, end = where[first], where[first + count - 1] + 1
        if end - start != count:
            raise ValueError("an image's tokens are not contiguous")
        pictures.append(Picture(image.digest, start, end, split))
        first += count
    return Media(inputs, pictures)


def _per_image(inputs: dict[str, Any], n: int) -> list[dict[str, np.ndarray]]:
    """Each image's share of ``inputs``: a patch grid's rows of pixel values, else one entry of each
    input per image."""
    grid = inputs.get(GRID)
    out: list[dict[str, np.ndarray]] = [{} for _ in range(n)]
    for key, value in inputs.items():
        value = np.asarray(value)
        if key == "pixel_values" and grid is not None:
            edges = np.cumsum([0] + [int(np.prod(g)) for g in grid])
            parts = [value[a:b] for a, b in zip(edges, edges[1:])]
        elif value.ndim and value.shape[0] == n:
            parts = [value[i : i + 1] for i in range(n)]
        else:
            raise ValueError(f"cannot tell the images' {key} apart")
        for one, part in zip(out, parts):
            one[key] = part
    return out

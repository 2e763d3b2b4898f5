"""The vision encoder's output, kept per image: an agent that sends the same screenshot again, or a
conversation that sends its first image with every turn, does not pay the encoder again.

An image's output is what the model puts in place of its placeholder tokens: its feature rows in the
language model's space, from mlx-vlm's ``get_input_embeddings`` over the image's placeholders alone.
Kept by digest (with the model: one encoder per loaded model), least recently used out first, within a
budget in bytes. Engine thread only (``stats`` from any).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import mlx.core as mx

from mlxcli.engine.vision.media import Picture


class Encoder:
    def __init__(self, model: Any, image_token: int, max_bytes: int):
        self.model = model  # mlx-vlm's
        self.image_token = image_token
        self.max_bytes = max_bytes
        self.nbytes = 0
        self.encoded = 0  # images run through the encoder
        self.reused = 0  # images whose rows were kept
        self._kept: OrderedDict[str, mx.array] = OrderedDict()

    def rows(self, picture: Picture) -> mx.array:
        """The feature rows of ``picture``'s placeholder tokens, ``(end - start, hidden)``."""
        rows = self._kept.get(picture.digest)
        if rows is not None:
            self._kept.move_to_end(picture.digest)
            self.reused += 1
            return rows
        rows = self._encode(picture)
        self.encoded += 1
        if rows.nbytes <= self.max_bytes:
            self._kept[picture.digest] = rows
            self.nbytes += rows.nbytes
            while self.nbytes > self.max_bytes:
                _, dropped = self._kept.popitem(last=False)
                self.nbytes -= dropped.nbytes
        return rows

    def _encode(self, picture: Picture) -> mx.array:
        placeholders = mx.array([[self.image_token] * (picture.end - picture.start)])
        inputs = {k: mx.array(v) for k, v in picture.inputs.items()}
        rows = self.model.get_input_embeddings(placeholders, inputs.pop("pixel_values"), **inputs).inputs_embeds[0]
        if rows.shape[0] != placeholders.shape[1]:  # the model expands its placeholders itself: not read this way
            raise ValueError(f"the vision encoder gave {rows.shape[0]} rows for {placeholders.shape[1]} image tokens")
        mx.eval(rows)
        return rows

    def snapshot(self) -> dict[str, int]:
        """For /health (any thread: counters)."""
        return {"images": len(self._kept), "bytes": self.nbytes, "encoded": self.encoded, "reused": self.reused}

"""The runners of a vision model's jobs.

``VisionBatch``: the continuous batch (batch.py) over a ``VisionLanguage`` (language.py): image and text
requests read their prompts and decode together, under the same scheduling policy as text models. Each
prompt's cache is made ready for its images and positions as it joins; its prefix comes from the prompt
cache, whose keys carry the images' identities (``RenderedPrompt.cache_tokens``), so a turn reads only
what is new (and images already in the cached prefix are not encoded at all).

``VisionSolo``: one request at a time through mlx-vlm's ``generate_step``, for the architectures
language.py does not know and for quantized KV caches (``--kv-bits``). The first step computes the image
features and the prompt's embeddings, then prefills; each later step is one token. No prompt cache:
such a model's position state (Qwen2-VL's multimodal RoPE offsets, in mlx-vlm) lives in the model between
steps rather than in the KV cache, so a cached prefix cannot be resumed safely.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import mlx.core as mx

from mlxcli.engine.batch import Batch
from mlxcli.engine.solo import Solo

if TYPE_CHECKING:
    from mlxcli.engine.job import Job


class VisionBatch(Batch):
    """``Batch`` whose model is a ``VisionLanguage``."""

    def join(self, job: "Job") -> None:
        media = job.prompt.media
        if media is not None and media.pictures is None:
            raise ValueError("this model's image processor gave image tokens that cannot be matched to the images")
        super().join(job)
        reading = self._reading[-1]
        try:
            with mx.stream(self._stream):
                self.model.model.prepare(reading.cache, reading.tokens, media)
        except Exception:  # this request fails alone (engine.py): a cache not made ready must not join the batch
            self._reading.remove(reading)
            raise


class VisionSolo(Solo):
    """``Solo``'s steps over mlx-vlm's generator."""

    def join(self, job: "Job") -> None:
        from mlx_vlm.generate.ar import generate_step

        model = getattr(self.model.model, "vlm", self.model.model)  # mlx-vlm's own
        media = {k: mx.array(v) for k, v in (job.prompt.media.inputs if job.prompt.media is not None else {}).items()}
        pixels = media.pop("pixel_values", None)
        language = getattr(model, "language_model", None)
        for stale in ("_position_ids", "_rope_deltas"):  # the last request's multimodal positions
            if language is not None and hasattr(language, stale):
                setattr(language, stale, None)
        self._steps = generate_step(
            mx.array([job.prompt.tokens]),
            model,
            pixels,
            None,
            max_tokens=job.max_tokens,
            sampler=self._samplers.sampler(job),
            logits_processors=self._samplers.processors(job),
            prefill_step_size=self._settings.prefill_step_size,
            **media,
        )
        self._sequence = self._new_sequence(job, 0, started=True)
        self._sequence.caches = False

    def _keep(self) -> None:
        """Nothing: see the module's docstring."""

"""One vision request at a time, through mlx-vlm's ``generate_step``.

The first step computes the image features and the prompt's embeddings (``get_input_embeddings``),
then prefills; each later step is one token, read by the same ``Sequence`` as text models, so
reasoning, tool calls, stop strings and constraints work unchanged. Text-only requests to a vision
model take this path too.

No prompt cache: a vision model's position state (Qwen2-VL's multimodal RoPE offsets) lives in the
model between steps rather than in the KV cache, so a cached prefix cannot be resumed safely, and two
requests never share KV. No batching yet: our continuous batch drives mlx-lm's BatchGenerator, which takes
no image features; mlx-vlm's own is a separate scheduler. Requests run one after another.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import mlx.core as mx

from mlxcli.engine.solo import Solo

if TYPE_CHECKING:
    from mlxcli.engine.job import Job


class VisionSolo(Solo):
    """``Solo``'s steps over mlx-vlm's generator."""

    def join(self, job: "Job") -> None:
        from mlx_vlm.generate.ar import generate_step

        media = {k: mx.array(v) for k, v in (job.prompt.media or {}).items()}
        pixels = media.pop("pixel_values", None)
        language = getattr(self.model.model, "language_model", None)
        for stale in ("_position_ids", "_rope_deltas"):  # the last request's multimodal positions
            if language is not None and hasattr(language, stale):
                setattr(language, stale, None)
        self._steps = generate_step(
            mx.array([job.prompt.tokens]),
            self.model.model,
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

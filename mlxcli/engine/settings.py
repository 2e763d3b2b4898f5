"""Engine settings (importable without mlx, so the CLI can build them before set-up)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class EngineSettings:
    """Server-side defaults, used when a request leaves a field out."""

    temperature: float = 0.7
    top_p: float = 0.95
    max_tokens: int = 4096
    max_queue: int = 32
    prefill_step_size: int = 512
    context_length: int | None = None  # lowers the model's own window

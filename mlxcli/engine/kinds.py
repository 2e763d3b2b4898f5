"""The model kinds the engine serves, in the order they are tried on a model directory, and the one walk
that turns a directory into a ``ServedModel``: read config.json once, let the first kind that claims
the directory build it. Adding a kind: its package with one ``Kind`` object (kind.py), and a line here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from mlxcli.engine.embeddings.kind import EMBEDDINGS
from mlxcli.engine.imagegen.kind import IMAGEGEN
from mlxcli.engine.kind import Kind
from mlxcli.engine.loading import ModelDir
from mlxcli.engine.served import ServedModel
from mlxcli.engine.settings import EngineSettings, ModelSpec
from mlxcli.engine.speech.kind import SPEECH
from mlxcli.engine.text.kind import TEXT
from mlxcli.engine.vision.kind import VISION


KINDS: tuple[Kind, ...] = (IMAGEGEN, EMBEDDINGS, SPEECH, VISION, TEXT)  # TEXT last: it takes any directory mlx-lm can load
_BY_NAME = {kind.name: kind for kind in KINDS}


def kind_of(model: ServedModel) -> Kind:
    return _BY_NAME[model.kind]


def for_task(task: str) -> Kind:
    """The kind that answers requests of ``task`` (chat: text)."""
    return next(kind for kind in reversed(KINDS) if kind.task == task)


def served_model(name: str, path: Path, settings: EngineSettings, spec: ModelSpec | None = None, ids: Sequence[str] = ()) -> ServedModel:
    """A model directory ready to serve: tokenizer and context window now, weights on first use."""
    directory = ModelDir.read(path)
    kind = next(kind for kind in KINDS if kind.detect(directory))
    return kind.serve(directory, name, spec or ModelSpec(model=str(path)), settings, ids)


def prepare(spec: ModelSpec, settings: EngineSettings, progress=None) -> ServedModel:
    """Resolve a spec (fetching or converting the model if needed) into a model ready to serve."""
    from mlxcli.models import resolve_model

    resolved = resolve_model(spec.model, progress=progress)
    # A local directory is served under its basename rather than its absolute path.
    default_name = Path(resolved.name).name if resolved.source == "local" else resolved.name
    return served_model(spec.served_name or default_name, resolved.path, settings, spec, ids=(spec.model, resolved.name))

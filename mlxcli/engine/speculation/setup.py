"""Which models speculate, with what: decided when a model is configured (``wanted``: its spec, else the
server's flags; a draft model named is resolved then, as the model itself is), checked when it loads
(``attach``: what cannot speculate says so in the log, once, and runs without)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from mlx_lm.models.cache import KVCache, make_prompt_cache

from mlxcli.core.errors import ModelError
from mlxcli.engine import loading
from mlxcli.engine.settings import Speculation

if TYPE_CHECKING:
    import mlx.nn as nn

    from mlxcli.engine.settings import EngineSettings, ModelSpec

log = logging.getLogger("mlxcli.engine")


def wanted(spec: "ModelSpec", settings: "EngineSettings") -> Speculation | None:
    """What the model's spec (else the server) asks for; a draft model's name resolved to its directory
    (fetched if need be, as `mlxcli pull` would)."""
    mode = spec.speculative or settings.speculative
    draft = spec.draft_model or (settings.draft_model if spec.speculative != "off" else None)
    if mode != "ngram" and not draft:
        return None
    if draft:
        from mlxcli.models import resolve_model

        draft = str(resolve_model(draft).path)
    return Speculation(lookup=mode == "ngram", draft=draft, depth=settings.speculative_depth)


def speculating(load: Callable[[], loading.LoadedModel], wanted: Speculation | None, settings: "EngineSettings"):
    """``load`` (a model's loader), then what it speculates with, checked."""
    if wanted is None:
        return load

    def load_and_attach() -> loading.LoadedModel:
        loaded = load()
        attach(loaded, wanted, settings)
        return loaded

    return load_and_attach


def attach(loaded: loading.LoadedModel, wanted: Speculation, settings: "EngineSettings") -> None:
    """Set ``loaded.speculation`` (and load its draft model), or log why the model runs without."""
    why = _refusal(loaded.model, settings)
    draft = None
    if why is None and wanted.draft:
        try:
            draft = loading.load(f"{loaded.name} (draft)", Path(wanted.draft))
        except ModelError as exc:
            why = f"its draft model cannot load: {exc}"
        else:
            why = _draft_refusal(loaded, draft)
    if why is not None:
        log.warning("%s: speculative decoding (%s) is off: %s", loaded.name, wanted.mode, why)
        return
    loaded.speculation, loaded.draft = wanted, draft
    if draft is not None:
        loaded.weight_bytes += draft.weight_bytes
    log.info("%s: speculative decoding: %s, up to %d tokens per step", loaded.name, wanted.mode, wanted.depth)


def mergeable(cache: list) -> bool:
    """Whether caches can drop a row's last positions: plain KV caches only (a sliding window, once
    wrapped, and a recurrent state cannot)."""
    return all(type(c) is KVCache for c in cache)


def _refusal(model: "nn.Module", settings: "EngineSettings") -> str | None:
    if settings.kv_bits:
        return "with --kv-bits requests run one at a time, unbatched"
    if settings.distributed:
        return "under --distributed every rank must take the same decisions, and speculation times its steps"
    if not all(hasattr(c, "merge") for c in make_prompt_cache(model)):
        return "its requests run one at a time, unbatched"
    if not mergeable(make_prompt_cache(model)):
        return "its KV caches cannot drop positions (a sliding window or a recurrent state)"
    return None


def _draft_refusal(loaded: loading.LoadedModel, draft: loading.LoadedModel) -> str | None:
    vocab, draft_vocab = _vocabulary(loaded), _vocabulary(draft)
    if vocab != draft_vocab:
        return f"its draft model {draft.path} has {draft_vocab} tokens, the model {vocab}"
    if not mergeable(make_prompt_cache(draft.model)):
        return f"its draft model {draft.path} has KV caches that cannot drop positions"
    return None


def _vocabulary(loaded: loading.LoadedModel) -> int:
    return loaded.config.get("vocab_size") or len(loaded.tokenizer)

"""The table of served models: which names reach which model, and which models are in memory.

Each model's tokenizer and context window are read when the table is built (tokenizer
files and config.json only: cheap, a few MB per model, kept for the server's life), so
callers render and check a prompt on their own thread whether or not the weights are
loaded: a prompt over the window is refused before a stream's 200, and /v1/models
knows every model's window without loading it. Weights are loaded, evicted and
unloaded only on the engine's worker thread (MLX state is bound to the thread that
created it), through ``acquire`` / ``release`` / ``unload_idle``; any thread may call
``resolve`` and ``snapshot``.

Eviction is least-recently-used among models with no generation in progress
(``in_use == 0``), so a model is never unloaded under a running request. A model idle for
its keep-alive (the last request's ``keep_alive``, else ``idle_unload``) is unloaded. The models of each
task (chat, embedding, ...) have their own ``max_loaded`` budget: an embedding model beside a chat model
never waits for the chat model's generations to end.
"""

from __future__ import annotations

import fnmatch
import gc
import logging
import math
import threading
import time
from typing import Callable, Sequence

import mlx.core as mx

from mlxcli.core.engine import ModelKind, ModelStatus
from mlxcli.core.errors import ModelError, ModelNotFound
from mlxcli.engine import loading
from mlxcli.engine.served import ServedModel
from mlxcli.engine.settings import EngineSettings

log = logging.getLogger("mlxcli.engine")


class ModelRegistry:
    def __init__(
        self,
        models: Sequence[ServedModel],
        *,
        max_loaded: int = 1,
        idle_unload: float | None = None,
        strict_names: bool = False,
        aliases: Sequence[tuple[str, str]] = (),
        clock: Callable[[], float] = time.time,
    ):
        if not models:
            raise ModelError("no model to serve")
        if max_loaded < 1:
            raise ModelError("max_loaded_models must be at least 1")
        self.models = list(models)
        self.max_loaded = max_loaded
        self.idle_unload = idle_unload or None
        self.strict_names = strict_names
        self._clock = clock
        self._lock = threading.Lock()
        self.on_unload: Callable[[ServedModel], None] | None = None  # drops what the engine keeps for it
        self._by_name: dict[str, ServedModel] = {}
        self._patterns: list[tuple[str, ServedModel]] = []  # aliases with wildcards, in configuration order
        for model in self.models:
            for name in (model.name, *model.aliases):
                if is_pattern(name):
                    self._patterns.append((_key(name), model))
                    continue
                other = self._by_name.setdefault(_key(name), model)
                if other is not model:
                    raise ModelError(
                        f"the name {name!r} would reach both {other.name!r} and {model.name!r}: "
                        "give the models distinct served names and aliases (in a --config file)"
                    )
        for model in self.models:  # ids last: the same weights may be served twice, under two names
            for name in model.ids:
                self._by_name.setdefault(_key(name), model)
        for pattern, target in aliases:  # --model-alias PATTERN=NAME: after the config file's own
            model = self.lookup(target)
            if model is None:
                served = ", ".join(m.name for m in self.models)
                raise ModelError(f"--model-alias {pattern}={target}: no served model is named {target!r} (served: {served})")
            self._patterns.append((_key(pattern), model))

    @classmethod
    def from_settings(cls, models: Sequence[ServedModel], settings: EngineSettings) -> "ModelRegistry":
        return cls(
            models,
            max_loaded=settings.max_loaded_models,
            idle_unload=settings.idle_unload,
            strict_names=settings.strict_model_names,
            aliases=settings.model_aliases,
        )

    @property
    def default(self) -> ServedModel:
        """The first configured model: it answers requests that name no model."""
        return self.models[0]

    # ---- names (any thread) ----------------------------------------------

    def lookup(self, name: str) -> ServedModel | None:
        """The model this name reaches (any case): a served name, alias or id, else the first alias
        pattern it matches (``claude-*``: clients such as Claude Code ask for several model names)."""
        key = _key(name)
        found = self._by_name.get(key)
        if found is None:
            found = next((model for pattern, model in self._patterns if fnmatch.fnmatchcase(key, pattern)), None)
        return found

    def resolve(self, requested: str | None, task: ModelKind = "chat") -> ServedModel:
        """The model a request of ``task`` (chat, embedding, ...) selects by its ``model``, or ModelNotFound.

        No name → the first model of that task. The only model of a task answers to any name (clients
        send names like ``gpt-4o`` or ``text-embedding-3-small``) unless names are strict. With no
        model of the task, all models count (the caller then says why the one reached cannot answer).
        """
        of_kind = [m for m in self.models if m.task == task] or self.models
        if not requested or not requested.strip():
            return of_kind[0]
        found = self.lookup(requested)
        if found is not None:
            return found
        if len(of_kind) == 1 and not self.strict_names:
            return of_kind[0]
        served = ", ".join(m.name for m in self.models)
        raise ModelNotFound(f"The model `{requested}` does not exist. Served models: {served}.", param="model")

    # ---- memory (worker thread only) ---------------------------------------

    def ensure_loaded(self, model: ServedModel) -> loading.LoadedModel:
        """The model's weights, loading them first (evicting idle models to stay within ``max_loaded``)."""
        if model.loaded is None:
            self._make_room_for(model)
            self._load(model)
        assert model.loaded is not None
        return model.loaded

    def acquire(self, model: ServedModel) -> loading.LoadedModel:
        """``ensure_loaded`` for one generation: the model cannot be evicted until ``release``."""
        loaded = self.ensure_loaded(model)
        with self._lock:
            model.in_use += 1
            model.last_used = self._clock()
        return loaded

    def release(self, model: ServedModel) -> None:
        with self._lock:
            model.in_use -= 1
            model.last_used = self._clock()

    def set_keep_alive(self, model: ServedModel, seconds: float | None) -> None:
        """How long ``model`` stays loaded once idle, as the request starting now says (None: ``idle_unload``)."""
        with self._lock:
            model.keep_alive = seconds

    def _keep_alive(self, model: ServedModel) -> float | None:
        limit = model.keep_alive if model.keep_alive is not None else self.idle_unload
        return None if limit is None or math.isinf(limit) else limit

    def unload_idle(self, keep: ServedModel | None = None) -> None:
        """Unload models unused for their keep-alive (but not ``keep``, about to be used)."""
        now = self._clock()
        for model in self.models:
            limit = self._keep_alive(model)
            idle = model.loaded is not None and model.in_use == 0 and model is not keep
            if idle and limit is not None and now - (model.last_used or now) >= limit:
                self._unload(model, f"idle for {limit:g}s")

    def _make_room_for(self, model: ServedModel) -> None:
        while len(loaded := [m for m in self.models if m.loaded is not None and m.task == model.task]) >= self.max_loaded:
            idle = [m for m in loaded if m.in_use == 0]
            if not idle:  # only possible once generations of several models overlap
                raise ModelError(f"cannot load {model.name!r}: every loaded {model.task} model is in use")
            victim = min(idle, key=lambda m: m.last_used or 0.0)
            self._unload(victim, f"least recently used; making room for {model.name}")

    def _load(self, model: ServedModel) -> None:
        with self._lock:
            model.state = "loading"
        log.info("loading %s", model.name)
        try:
            loaded = model.load()
        except BaseException:
            with self._lock:
                model.state = "unloaded"
            raise
        with self._lock:
            model.loaded = loaded
            model.state = "loaded"
            model.loaded_at = model.last_used = self._clock()

    def _unload(self, model: ServedModel, reason: str) -> None:
        with self._lock:
            model.loaded = None
            model.state = "unloaded"
            model.loaded_at = None
        if self.on_unload is not None:
            self.on_unload(model)
        gc.collect()  # drop the arrays now, then hand their memory back
        mx.clear_cache()
        log.info("unloaded %s (%s)", model.name, reason)

    # ---- views (any thread) ------------------------------------------------

    def snapshot(self) -> list[ModelStatus]:
        with self._lock:
            return [self._status(m) for m in self.models]

    def _status(self, m: ServedModel) -> ModelStatus:
        loaded = m.loaded
        unloads_at, limit = None, self._keep_alive(m)
        if loaded is not None and limit is not None and m.in_use == 0 and m.last_used is not None:
            unloads_at = m.last_used + limit
        return ModelStatus(
            name=m.name,
            kind=m.task,
            aliases=m.aliases,
            context_window=m.context_window,
            state=m.state,
            active=m.in_use,
            loaded_at=m.loaded_at,
            last_used=m.last_used,
            unloads_at=unloads_at,
            load_seconds=loaded.load_seconds if loaded else None,
            weight_bytes=loaded.weight_bytes if loaded else None,
            dtype=loaded.dtype if loaded else None,
            details=m.details,
            capabilities=m.capabilities,
        )


def _key(name: str) -> str:
    return name.strip().lower()


def is_pattern(name: str) -> bool:
    """An alias with shell-style wildcards (``*``, ``?``, ``[…]``) stands for every name it matches."""
    return any(c in name for c in "*?[")

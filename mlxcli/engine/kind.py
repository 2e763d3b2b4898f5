"""A model kind: one object that says how a kind of model is detected, built, listed, run and refused.

Each kind is one package (text/, vision/, embeddings/) with one ``Kind`` object, listed in kinds.py.
The engine asks a model's kind instead of branching on it:

- ``detect`` / ``serve``: claim a model directory (read once: ``loading.ModelDir``) and build the
  ``ServedModel`` (tokenizer, window, capabilities, how to load the weights), on any thread;
- a kind that chats (text, vision): ``render`` a request into its prompt (caller's thread, under the
  engine's render lock) and make the ``runner`` that generates for its model's jobs (engine thread);
- a kind that answers once (embeddings, ...): ``prepare`` a request into a ``WorkJob`` (caller's
  thread), ``handle`` it for the caller, and make the ``Worker`` the engine loop steps (engine thread).

What a kind cannot do is refused in the shape of the request: ``refusal`` says why a model of another
kind cannot answer this kind's requests.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Sequence

from mlxcli.core.errors import InvalidRequest
from mlxcli.engine.job import WorkHandle, WorkJob

if TYPE_CHECKING:
    import mlx.core as mx

    from mlxcli.core.request import ChatRequest
    from mlxcli.engine.loading import LoadedModel, ModelDir
    from mlxcli.engine.prompt import RenderedPrompt
    from mlxcli.engine.prompt_cache import PromptCache
    from mlxcli.engine.registry import ModelRegistry
    from mlxcli.engine.runner import Runner
    from mlxcli.engine.served import ServedModel
    from mlxcli.engine.settings import EngineSettings, ModelSpec
    from mlxcli.engine.worker import Worker


class Kind:
    name = ""  # ServedModel.kind
    task = "chat"  # the requests its models answer (ServedModel.task): chat, embedding, ...
    locked_prepare = True  # ``prepare`` calls a tokenizer shared with renders: the engine holds its render lock

    def detect(self, directory: "ModelDir") -> bool:
        raise NotImplementedError

    def serve(self, directory: "ModelDir", name: str, spec: "ModelSpec", settings: "EngineSettings", ids: Sequence[str]) -> "ServedModel":
        raise NotImplementedError

    def refusal(self, model: "ServedModel") -> str:
        """Why ``model`` (of another kind) cannot answer a request of this kind's task."""
        return f"The model `{model.name}` is a {model.task} model: it does not answer {self.task} requests."

    # ---- kinds that chat ----

    def render(self, model: "ServedModel", request: "ChatRequest", boundaries: bool) -> "RenderedPrompt":
        raise InvalidRequest(f"The model `{model.name}` is a {model.task} model: it answers {model.task} requests, not chat.", param="model")

    def runner(self, model: "ServedModel", loaded: "LoadedModel", settings: "EngineSettings", prompt_cache: "PromptCache", stream: "mx.Stream") -> "Runner":
        raise NotImplementedError

    # ---- kinds that answer once ----

    def prepare(self, model: "ServedModel", request: Any) -> WorkJob:
        """The job for ``request``, checked (raises InvalidRequest naming the field): caller's thread."""
        raise NotImplementedError

    def handle(self, job: WorkJob, alive: Callable[[], bool], cancel: Callable[[WorkJob], None]) -> WorkHandle:
        return WorkHandle(job, alive, cancel)

    def worker(self, registry: "ModelRegistry") -> "Worker":
        raise NotImplementedError


def window_limit(spec: "ModelSpec", settings: "EngineSettings") -> int | None:
    """The lowest of the window limits set for a model (its spec's, the server's), if any."""
    limits = [n for n in (spec.context_length, settings.context_length) if n]
    return min(limits) if limits else None


def other_names(name: str, ids: Sequence[str]) -> tuple[str, ...]:
    """The ids that reach a model besides its served name (the model as configured, its canonical id)."""
    return tuple(i for i in dict.fromkeys(ids) if i.strip().lower() != name.strip().lower())

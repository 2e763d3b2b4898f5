"""An engine without mlx: it satisfies ``mlxcli.core.engine.Engine``, echoes the last user message, and
embeds a text as ``[its length in characters, 1.0]``.

For what the server does around the engine (routing, wire formats, errors), in a process that
cannot import mlx at all.
"""

from __future__ import annotations

from typing import Any, Iterator

from mlxcli.core.embeddings import EmbeddingRequest, Embeddings
from mlxcli.core.engine import ModelStatus
from mlxcli.core.errors import ModelNotFound
from mlxcli.core.events import Event, Finish, TextDelta, Usage
from mlxcli.core.request import ChatRequest


class EchoGeneration:
    def __init__(self, request: ChatRequest, model: str = "echo"):
        self.model = model
        last = next((m.content or "" for m in reversed(request.messages) if m.role == "user"), "")
        self.prompt_tokens = sum(len((m.content or "").split()) for m in request.messages)
        self.compaction = None
        self._events: list[Event] = [TextDelta(f"echo: {last}")] if request.messages else []
        self._events.append(Finish("stop", Usage(prompt_tokens=self.prompt_tokens, completion_tokens=len(last.split()) + 1)))

    @property
    def generated_tokens(self) -> int:
        return 0

    @property
    def cached_tokens(self) -> int:
        return 0

    def next_event(self, timeout: float | None = None) -> Event | None:
        if not self._events:
            raise StopIteration
        return self._events.pop(0)

    def __iter__(self) -> Iterator[Event]:
        while self._events:
            yield self._events.pop(0)

    def cancel(self) -> None:
        self._events.clear()


class LengthEmbedding:
    def __init__(self, request: EmbeddingRequest, model: str = "echo"):
        self.model = model
        lengths = [len(x) for x in request.inputs]
        self.prompt_tokens = sum(lengths)
        self._result = Embeddings([[float(n), 1.0] for n in lengths], self.prompt_tokens)

    def result(self, timeout: float | None = None) -> Embeddings:
        return self._result

    def cancel(self) -> None:
        pass


class EchoEngine:
    def __init__(self, name: str = "echo"):
        self.name = name
        self.submitted: list[ChatRequest] = []

    @property
    def alive(self) -> bool:
        return True

    @property
    def default_model(self) -> str:
        return self.name

    @property
    def capacity(self) -> int:
        return 4

    def models(self) -> list[ModelStatus]:
        return [ModelStatus(name=self.name, kind="chat", aliases=(), context_window=1024, state="loaded", active=0, capabilities=("chat",))]

    def lookup(self, name: str) -> str | None:
        return self.name if name == self.name else None

    def resolve(self, requested: str | None, kind: str = "chat") -> str:
        if requested not in (None, "", self.name):
            raise ModelNotFound(f"The model `{requested}` does not exist.", param="model")
        return self.name

    def count_tokens(self, request: ChatRequest) -> int:
        return EchoGeneration(request).prompt_tokens

    def submit(self, request: ChatRequest) -> EchoGeneration:
        self.resolve(request.model)
        self.submitted.append(request)
        return EchoGeneration(request)

    def load(self, model: str | None, keep_alive: float | None = None) -> EchoGeneration:
        self.resolve(model)
        return EchoGeneration(ChatRequest([]))

    def work(self, task: str, request: Any) -> "LengthEmbedding":
        return self.embed(request)

    def embed(self, request: EmbeddingRequest) -> "LengthEmbedding":
        self.resolve(request.model, "embedding")
        return LengthEmbedding(request)

    def stats(self) -> dict[str, Any]:
        return {
            "queue_depth": 0,
            "active_requests": 0,
            "prompt_cache": {"entries": 0, "bytes": 0},
            "loaded_models": [self.name],
            "loading_models": [],
        }

    def reset_peak_memory(self) -> None:
        pass

    def stop(self, grace: float = 10.0) -> None:
        pass

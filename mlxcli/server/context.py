"""What every resource of the server shares: the engine, the settings, admission, metrics, the store, shutdown hooks."""

from __future__ import annotations

from dataclasses import dataclass, field

from mlxcli.core.embeddings import EmbeddingRequest, Embeddings
from mlxcli.core.engine import Engine, ModelKind
from mlxcli.server import disconnect
from mlxcli.server.metrics import Metrics
from mlxcli.server.middleware import Admission
from mlxcli.server.settings import ServerSettings
from mlxcli.server.shutdown import ShutdownHooks
from mlxcli.store import ConversationStore


@dataclass
class ServerContext:
    engine: Engine
    settings: ServerSettings
    admission: Admission
    metrics: Metrics
    store: ConversationStore = field(default_factory=ConversationStore.memory)
    shutdown: ShutdownHooks = field(default_factory=ShutdownHooks)  # flush/close what the server holds

    def model_name(self, requested: str | None, kind: ModelKind = "chat") -> str:
        """Map a requested model name to a served model; return the name to echo back.

        Every provider calls this with the name its client used (OpenAI/Anthropic ``model``,
        an Azure deployment) before submitting. Raises ModelNotFound (404 in the provider's
        shape) when several models are served and none answers to ``requested``, or a single
        model is served with ``--strict-model-names``. The client's own name is echoed back
        (clients send names like ``gpt-4o``); the served name when it sent none.
        """
        served = self.engine.resolve(requested, kind)
        return requested or served

    def embed(self, request: EmbeddingRequest, api: str) -> Embeddings:
        """The vectors of ``request``, counted in /metrics under ``api``; cancelled if the client leaves.
        Errors before the vectors are plain HTTP errors."""
        job = self.engine.embed(request)
        tracked = self.metrics.track_embeddings(job, api=api, model=self.engine.resolve(request.model, "embedding"))
        return disconnect.embeddings(tracked)

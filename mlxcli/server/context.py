"""What every resource of the server shares: the engine, the settings, admission, metrics, the store, shutdown hooks."""

from __future__ import annotations

from dataclasses import dataclass, field

from mlxcli.core.embeddings import EmbeddingRequest, Embeddings
from mlxcli.core.engine import Engine
from mlxcli.core.transcription import TranscriptionJob, TranscriptionRequest
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

    def embed(self, request: EmbeddingRequest, api: str) -> tuple[Embeddings, str]:
        """The vectors of ``request`` and the served name of the model that made them, counted in /metrics
        under ``api``; cancelled if the client leaves. Errors before the vectors are plain HTTP errors."""
        job = self.engine.embed(request)
        tracked = self.metrics.track_embeddings(job, api=api, model=job.model)
        return disconnect.embeddings(tracked), job.model

    def transcribe(self, request: TranscriptionRequest, api: str) -> TranscriptionJob:
        """The engine's job for ``request``, counted in /metrics under ``api`` once it ends."""
        job: TranscriptionJob = self.engine.work("transcription", request)
        return self.metrics.track_transcription(job, api=api, model=job.model)

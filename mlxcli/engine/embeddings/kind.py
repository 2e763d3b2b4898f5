"""``EMBEDDINGS``: sentence-transformers directories (a ``Pooling`` module in ``modules.json``): our MLX
encoder (BERT, RoBERTa, XLM-RoBERTa, MPNet) or an mlx-lm decoder, pooled as the files say. They answer
embeddings requests only, a batch of inputs per pass of the engine loop (work.py)."""

from __future__ import annotations

import logging
from collections import deque
from typing import TYPE_CHECKING, Sequence

from mlxcli.core.embeddings import EmbeddingRequest
from mlxcli.core.errors import InvalidRequest
from mlxcli.engine import loading
from mlxcli.engine.details import model_details
from mlxcli.engine.embeddings import model as embeddings
from mlxcli.engine.embeddings.work import EmbedJob, Embedder, EmbeddingHandle, check_inputs, plan, tokenize
from mlxcli.engine.kind import Kind, other_names, window_limit
from mlxcli.engine.served import ServedModel

if TYPE_CHECKING:
    from mlxcli.engine.loading import ModelDir
    from mlxcli.engine.registry import ModelRegistry
    from mlxcli.engine.settings import EngineSettings, ModelSpec

log = logging.getLogger("mlxcli.engine")


class EmbeddingsKind(Kind):
    name = "embedding"
    task = "embedding"

    def detect(self, directory: "ModelDir") -> bool:
        return embeddings.embedding_config(directory.path, directory.config) is not None

    def serve(self, directory: "ModelDir", name: str, spec: "ModelSpec", settings: "EngineSettings", ids: Sequence[str]) -> ServedModel:
        path, config, limit = directory.path, directory.config, window_limit(spec, settings)
        setup = embeddings.embedding_config(path, config)
        assert setup is not None
        tokenizer = loading.tokenizer_of(path, config)
        log.info("%s: embeddings, %s pooling%s, %d dimensions", name, setup.pooling,
                 ", normalised" if setup.normalize else "", setup.width)
        return ServedModel(
            name=name,
            tokenizer=tokenizer,
            context_window=min(setup.window, limit or setup.window),
            load=lambda: embeddings.load(name, path, config, setup, tokenizer),
            aliases=tuple(spec.aliases),
            ids=other_names(name, ids),
            spec=spec,
            details=model_details(tokenizer, None, path, config),
            kind=self.name,
            capabilities=("embedding",),
            setup=setup,
        )

    def refusal(self, model: ServedModel) -> str:
        return (f"The model `{model.name}` is a chat model without a pooling configuration (sentence-transformers' "
                "modules.json): it cannot embed. Serve an embedding model beside it, e.g. --model minilm.")

    def render(self, model: ServedModel, request, boundaries: bool):
        raise InvalidRequest(f"The model `{model.name}` is an embedding model: it answers embeddings requests, not chat.", param="model")

    def prepare(self, model: ServedModel, request: EmbeddingRequest) -> EmbedJob:
        tokens = tokenize(request, model.tokenizer, model.context_window)
        check_inputs(request, tokens, model.setup, model.context_window)
        return EmbedJob(request=request, model=model, tokens=tokens, batches=deque(plan([len(t) for t in tokens])))

    def handle(self, job: EmbedJob, alive, cancel) -> EmbeddingHandle:
        return EmbeddingHandle(job, alive, cancel)

    def worker(self, registry: "ModelRegistry") -> Embedder:
        return Embedder(registry)


EMBEDDINGS = EmbeddingsKind()

"""``mlxcli bench --embeddings``: inputs/s and tokens/s of embeddings requests at several batch sizes.

Each request holds ``batch`` texts of exactly ``input_tokens`` tokens (special tokens included,
with the model's own tokenizer), fresh words every run. The targets (the engine in-process, and
servers over HTTP) take turns run by run, so a machine whose speed drifts favours no one.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol, Sequence

from mlxcli.bench.stats import summarize
from mlxcli.core.embeddings import EmbeddingRequest
from mlxcli.core.errors import MlxcliError

WORDS = ("river stone light garden paper window music winter yellow quiet number market doctor forest "
         "silver table planet orange letter mountain bridge candle engine island morning pencil rabbit").split()
PATH = "/v1/embeddings"


def make_input(encode: Callable[[str], list[int]], tokens: int, rng: random.Random) -> str:
    """A text of random words that is exactly ``tokens`` tokens long (ValueError if none is)."""
    words: list[str] = []
    while len(encode(" ".join(words + ["x"]))) <= tokens:
        words.append(rng.choice(WORDS))
    while words and len(encode(" ".join(words))) > tokens:
        words.pop()
    while len(encode(" ".join(words))) < tokens:
        words.append("a")
    text = " ".join(words)
    if len(encode(text)) != tokens:
        raise ValueError(f"cannot build an input of exactly {tokens} tokens with this tokenizer")
    return text


class Target(Protocol):
    name: str

    def embed(self, texts: list[str]) -> int:
        """Embed ``texts``; the vectors' count."""
        ...

    def describe(self) -> dict[str, Any]: ...


@dataclass
class EngineEmbedder:
    engine: Any  # mlxcli.core.engine.Engine
    model: str
    name: str = "engine"

    def embed(self, texts: list[str]) -> int:
        return len(self.engine.embed(EmbeddingRequest(list(texts), model=self.model)).result().vectors)

    def describe(self) -> dict[str, Any]:
        from mlxcli.engine import platform

        status = next(m for m in self.engine.models() if m.name == self.model)
        return {"name": self.name, "kind": "engine", "model": self.model, "dtype": status.dtype,
                "fast_path": platform.current().fast_path}


@dataclass
class HttpEmbedder:
    client: Any  # mlxcli.client.Client
    model: str
    name: str

    def embed(self, texts: list[str]) -> int:
        body = {"model": self.model, "input": texts, "encoding_format": "base64"}  # what the OpenAI SDKs send
        return len(self.client.post_json(PATH, body)["data"])

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "kind": "http", "url": self.client.root, "api": "embeddings", "model": self.model}


@dataclass
class BatchCell:
    target: str
    batch: int
    input_tokens: int
    seconds: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "target": self.target, "batch": self.batch, "input_tokens": self.input_tokens, "runs": len(self.seconds),
            "errors": len(self.errors), "error_messages": list(dict.fromkeys(self.errors))[:3],
            "inputs_per_s": summarize(self.batch / s for s in self.seconds).to_json(),
            "tokens_per_s": summarize(self.batch * self.input_tokens / s for s in self.seconds).to_json(),
            "latency_s": summarize(self.seconds).to_json(),
        }


def run(targets: Sequence[Target], encode: Callable[[str], list[int]], *, batches: Sequence[int], input_tokens: int,
        repeat: int, warmup: int, seed: int, tick: Callable[[], None] = lambda: None) -> list[BatchCell]:
    """Every batch size on every target, ``warmup`` unmeasured runs then ``repeat`` measured ones, interleaved."""
    rng = random.Random(seed)
    cells = [BatchCell(t.name, b, input_tokens) for b in batches for t in targets]
    for cell_group in (cells[i : i + len(targets)] for i in range(0, len(cells), len(targets))):
        for run_index in range(warmup + repeat):
            texts = [make_input(encode, input_tokens, rng) for _ in range(cell_group[0].batch)]
            for target, cell in zip(targets, cell_group):
                started = time.perf_counter()
                try:
                    count = target.embed(texts)
                    if count != len(texts):
                        raise MlxcliError(f"{count} vectors for {len(texts)} inputs")
                except MlxcliError as exc:
                    cell.errors.append(exc.message)
                else:
                    if run_index >= warmup:
                        cell.seconds.append(time.perf_counter() - started)
                tick()
    return cells

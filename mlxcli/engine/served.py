"""One configured model as the engine serves it (``ServedModel``): its names, what it reads requests with
(tokenizer, output format, a kind's own setup), its window, how to load it, and its state in memory.

Built by a model kind (kinds.py: one short walk over the model's directory); kept by the registry
(registry.py), which loads and unloads it on the engine thread.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from mlx_lm.tokenizer_utils import TokenizerWrapper

from mlxcli.core.engine import ModelDetails, ModelKind, ModelState
from mlxcli.core.request import Sampling
from mlxcli.engine import formats, loading
from mlxcli.engine.details import model_details
from mlxcli.engine.settings import ModelSpec
from mlxcli.engine.speculation.stats import SpecStats


@dataclass(eq=False)
class ServedModel:
    """One configured model. The fields after ``spec`` are its state, written by the worker thread."""

    name: str  # the served name: listed in /v1/models and used in logs
    tokenizer: TokenizerWrapper | Any  # None: a model that reads no tokens of ours (image generation); a speech model's: its own
    context_window: int
    load: Callable[[], loading.LoadedModel]  # called on the worker thread only
    aliases: tuple[str, ...] = ()
    ids: tuple[str, ...] = ()  # further names that reach it: the model as configured, its canonical id
    spec: ModelSpec | None = None  # sampling defaults, parser overrides
    format: formats.OutputFormat | None = None  # reasoning and tool-call formats; detected from the tokenizer when None
    details: ModelDetails | None = None  # what it is (directory, template, capabilities); from the tokenizer when None
    identity: str = ""  # its files and template (loading.fingerprint), for the prompt cache; "" : its name
    kind: str = "text"  # the model kind that built it (kinds.py): how the engine renders, runs and lists it
    capabilities: tuple[str, ...] = ("chat",)  # the first is the requests it answers (its task); then extras ("vision")
    setup: Any = None  # what its kind reads requests with: a vision model's image processor, an embedding model's pooling
    stop_tokens: frozenset[int] = frozenset()  # end-of-sequence and the format's own stop tokens (set from the tokenizer)

    state: ModelState = "unloaded"
    loaded: loading.LoadedModel | None = None
    in_use: int = 0  # generations in progress
    loaded_at: float | None = None
    last_used: float | None = None
    keep_alive: float | None = None  # seconds it stays loaded once idle, as the last request said (None: idle_unload)
    checkpoints: bool | None = None  # whether its prompts keep message-boundary checkpoints (None: not loaded yet)
    speculation: SpecStats = field(default_factory=SpecStats)  # its speculative decoding's counters, for /metrics

    def __post_init__(self) -> None:
        if self.spec is None:
            self.spec = ModelSpec(model=self.name)
        if self.format is None and self.task == "chat":
            self.format = formats.detect(self.tokenizer, self.spec.tool_call_parser, self.spec.reasoning_parser)
        if self.details is None:
            self.details = model_details(self.tokenizer, self.format)
        if not self.stop_tokens and self.format is not None:  # a model that does not generate has none
            # The format's own stop tokens end generation as end-of-sequence does (gpt-oss's <|call|>).
            self.stop_tokens = frozenset(self.tokenizer.eos_token_ids) | formats.stop_token_ids(self.format, self.tokenizer)

    @property
    def task(self) -> ModelKind:
        """The requests it answers: chat, embedding, ..."""
        return self.capabilities[0]

    @property
    def sampling(self) -> Sampling:
        assert self.spec is not None
        return self.spec.sampling

"""Engine settings and model specs (importable without mlx, so the CLI can build them before set-up)."""

from __future__ import annotations

from dataclasses import dataclass, field

from mlxcli.core.request import Sampling

# What a conversation that outgrows its model's window gets (engine/overflow.py).
POLICIES = ("error", "truncate", "summarize")
# Speculative decoding's proposers (engine/speculation/): "ngram" is prompt lookup; "off" (a model's own
# setting) turns off what the server's flags set. A draft model is named apart (draft_model).
SPECULATIVE = ("ngram", "off")
MAX_SPECULATIVE_DEPTH = 32


@dataclass
class EngineSettings:
    """Server-side defaults, used when a request and its model's spec leave a field out."""

    temperature: float = 0.7
    top_p: float = 0.95
    max_tokens: int = 4096
    max_queue: int = 32
    prefill_step_size: int = 512  # prompt tokens a step reads of one prompt at most (schedule.py)
    prefill_ratio: float = 10.0  # while streams decode, a step reads prompts for this many times the decode step's time
    young_ratio: float = 1.0  # ... and this many times while a young stream decodes (fewer than young_tokens out)
    young_tokens: int = 32
    max_step_seconds: float = 1.0  # a step (decode + prompt reading) takes about this long at most
    max_batch: int = 16  # requests decoding together; more wait in the queue
    prompt_cache_bytes: int = 2 << 30  # KV caches of earlier prompts kept for reuse (0: off)
    prompt_cache_entries: int = 64
    prompt_cache_dir: str | None = None  # the disk tier (None: off; `mlxcli serve` defaults to DATA_DIR/prompt-cache)
    prompt_cache_disk_bytes: int = 16 << 30
    vision_cache_bytes: int = 512 << 20  # a vision model's encoder output kept per image (vision/encoder.py)
    kv_bits: int | None = None  # quantize the KV cache (4 or 8); such requests run one at a time
    context_length: int | None = None  # lowers every model's own window
    chat_template: str | None = None  # a Jinja file for models whose spec names none
    max_loaded_models: int = 1  # models kept in memory at once; the least recently used is evicted
    idle_unload: float | None = None  # seconds unused after which a model is unloaded
    strict_model_names: bool = False  # a single model answers only to its own names
    model_aliases: list[tuple[str, str]] = field(default_factory=list)  # (name or pattern, served model) from --model-alias
    tool_call_parser: str | None = None  # for models whose spec names none: overrides detection ("none": off)
    reasoning_parser: str | None = None  # likewise, for reasoning markers ("harmony": gpt-oss's channels)
    reasoning: str = "separate"  # "separate": reasoning as its own events; "strip": dropped
    context_overflow: str = "error"  # for models whose spec names none: "error", "truncate" or "summarize" (overflow.py)
    context_keep_turns: int = 6  # "summarize" keeps this many of the last messages (tool results with their calls)
    distributed: str | None = None  # "tensor" or "pipeline": shard the model over mx.distributed's ranks
    speculative: str | None = None  # "ngram": prompt lookup, for models whose spec says nothing
    draft_model: str | None = None  # a draft model (same tokenizer) for models whose spec names none
    speculative_depth: int = 8  # proposed tokens a row verifies per step at most

    @property
    def capacity(self) -> int:
        """Requests accepted at once: ``max_batch`` generating, ``max_queue`` waiting."""
        return self.max_batch + self.max_queue

    def sampling(self) -> Sampling:
        """The server's sampling defaults: the last layer under a request's and its model's own."""
        return Sampling(temperature=self.temperature, top_p=self.top_p, max_tokens=self.max_tokens)


@dataclass
class ModelSpec:
    """One model to serve, as written in a config file or on the command line.

    ``sampling`` holds this model's defaults (fields left ``None`` fall back to the
    engine settings; a request's own values always win). The parser names override
    the detection of the model's formats (``formats.detect``).
    """

    model: str  # anything `mlxcli pull` accepts: alias, HF repo id, local directory, .gguf file
    served_name: str | None = None  # default: the model's canonical name (a directory's basename)
    aliases: list[str] = field(default_factory=list)
    sampling: Sampling = field(default_factory=Sampling)
    context_length: int | None = None  # lowers the model's own window
    chat_template: str | None = None  # a Jinja file replacing the tokenizer's template
    tool_call_parser: str | None = None
    reasoning_parser: str | None = None
    context_overflow: str | None = None
    context_keep_turns: int | None = None
    quantize: int | None = None  # an image model's weights, quantized at load (4 or 8 bits)
    image_preset: str | None = None  # an image model's mflux preset (z-image-turbo, schnell, dev, ...), when its names do not say
    speculative: str | None = None  # "ngram" or "off"; None: the server's --speculative
    draft_model: str | None = None  # None: the server's --draft-model


@dataclass(frozen=True)
class Speculation:
    """What a model speculates with (engine/speculation/setup.py decides it at serve time, checks it at load)."""

    lookup: bool  # prompt lookup
    draft: str | None  # the draft model's directory
    depth: int  # proposed tokens a row verifies per step at most

    @property
    def mode(self) -> str:
        return "+".join(name for name, on in (("ngram", self.lookup), ("draft", self.draft)) if on)

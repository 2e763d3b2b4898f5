"""Tiny random models and the scripted model, built on a real tokenizer.

The scripted model's logits force a reply chosen by ``respond(prompt_text)``.
It stores the token ids it has seen as its KV "keys", so the position inside
the reply is read from its own cache: no hidden state, and prompt caching or
batching see an ordinary KV cache.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Callable

import mlx.core as mx
import mlx.nn as nn
from mlx_lm.models.cache import ArraysCache, KVCache
from mlx_lm.tokenizer_utils import TokenizerWrapper
from mlx_lm.utils import load_tokenizer

from mlxcli.engine.loading import LoadedModel
from mlxcli.engine.served import ServedModel
from mlxcli.engine.settings import EngineSettings, ModelSpec
from mlxcli.engine.speculation import setup as speculation_setup

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "generation_config.json")
FORCE = 1e4  # large enough to survive any temperature and repetition penalty we allow
FAIL = -1  # in a plan: raise instead of producing a token
KEPT = 256  # replies (and prompts) a scripted model remembers: far more than answer at once; a long run stays bounded
KEPT_FORWARDS = 10_000  # forward passes' shapes a scripted model remembers (the last ones)
VERIFY_WIDTH = 64  # inputs up to this long get every position's logits (longer: a prompt slice, the last only)


_TOKENIZERS: dict[tuple, TokenizerWrapper] = {}


def shared_tokenizer(directory: Path) -> TokenizerWrapper:
    """The tokenizer in ``directory``, loaded once per test session (a load takes a second; models and engines
    leave it as it is, and one llguidance view of it serves them all). Keyed by the directory's files too, so
    that a test that rewrites them gets what they now say."""
    directory = Path(directory).resolve()
    key = (directory, tuple(sorted((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in directory.iterdir() if p.is_file())))
    if key not in _TOKENIZERS:
        _TOKENIZERS[key] = load_tokenizer(directory)
    return _TOKENIZERS[key]


class Fail(str):
    """A reply for ``respond``: the model produces this text, then raises (a failure mid-answer)."""


def copy_tokenizer(src: Path, dst: Path) -> None:
    dst.mkdir(parents=True, exist_ok=True)
    for name in TOKENIZER_FILES:
        if (src / name).exists():
            shutil.copy(src / name, dst / name)


def _vocab_size(tokenizer_dir: Path) -> int:
    config = tokenizer_dir / "config.json"
    return json.loads(config.read_text())["vocab_size"] if config.exists() else 49152


def _save_model(model: nn.Module, config: dict, tokenizer_dir: Path, dst: Path) -> Path:
    from mlx.utils import tree_flatten

    mx.eval(model.parameters())
    dst.mkdir(parents=True, exist_ok=True)
    mx.save_safetensors(str(dst / "model.safetensors"), dict(tree_flatten(model.parameters())))
    (dst / "config.json").write_text(json.dumps(config))
    copy_tokenizer(tokenizer_dir, dst)
    return dst


def make_tiny_model_dir(
    tokenizer_dir: Path, dst: Path, *, seed: int = 0, hidden_size: int = 64, layers: int = 2, model_type: str = "llama"
) -> Path:
    """A random 2-layer llama (or ``model_type``: ministral3, which mlx-lm can pipeline) with a real tokenizer,
    saved as an MLX model directory."""
    import importlib

    vocab = _vocab_size(tokenizer_dir)
    config = {
        "model_type": "llama",
        "hidden_size": hidden_size,
        "num_hidden_layers": layers,
        "intermediate_size": hidden_size * 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "rms_norm_eps": 1e-5,
        "vocab_size": vocab,
        "rope_theta": 10000.0,
        "max_position_embeddings": 2048,
        "tie_word_embeddings": True,
    }
    if model_type == "ministral3":
        config |= {"model_type": model_type, "rope_parameters": {
            "rope_type": "default", "rope_theta": 10000.0, "llama_4_scaling_beta": 0.1, "original_max_position_embeddings": 2048,
        }}
    arch = importlib.import_module(f"mlx_lm.models.{model_type}")
    mx.random.seed(seed)
    return _save_model(arch.Model(arch.ModelArgs.from_dict(config)), config, tokenizer_dir, dst)


def make_tiny_hybrid_model_dir(tokenizer_dir: Path, dst: Path, *, seed: int = 0) -> Path:
    """A random 4-layer Qwen3-Next (gated delta-net layers and attention, as Qwen3.5 has): its caches
    (ArraysCache beside KVCache) cannot be trimmed."""
    from mlx_lm.models import qwen3_next

    config = {
        "model_type": "qwen3_next",
        "hidden_size": 64,
        "num_hidden_layers": 4,
        "full_attention_interval": 2,
        "intermediate_size": 128,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "head_dim": 16,
        "linear_num_value_heads": 2,
        "linear_num_key_heads": 2,
        "linear_key_head_dim": 16,
        "linear_value_head_dim": 16,
        "linear_conv_kernel_dim": 4,
        "num_experts": 0,
        "num_experts_per_tok": 1,
        "decoder_sparse_step": 1,
        "shared_expert_intermediate_size": 64,
        "mlp_only_layers": [],
        "moe_intermediate_size": 64,
        "rms_norm_eps": 1e-6,
        "vocab_size": _vocab_size(tokenizer_dir),
        "rope_theta": 10000.0,
        "partial_rotary_factor": 0.25,
        "max_position_embeddings": 4096,
        "tie_word_embeddings": True,
    }
    mx.random.seed(seed)
    return _save_model(qwen3_next.Model(qwen3_next.ModelArgs.from_dict(config)), config, tokenizer_dir, dst)


def generation_marker(tokenizer: TokenizerWrapper) -> list[int]:
    """The tokens the chat template appends to ask for the assistant's turn.

    Only the part that does not depend on ``enable_thinking``: what a template adds
    after it (an opened or an empty think block) is, like a prefilled tool call, the
    start of the reply that the prompt already holds.
    """
    probe = [{"role": "user", "content": "x"}]
    without = tokenizer.apply_chat_template(probe, add_generation_prompt=False, tokenize=False)
    suffixes = []
    for thinking in (True, False):
        with_prompt = tokenizer.apply_chat_template(probe, add_generation_prompt=True, tokenize=False, enable_thinking=thinking)
        assert with_prompt.startswith(without), "unexpected chat template"
        suffixes.append(with_prompt[len(without):])
    return tokenizer.encode(os.path.commonprefix(suffixes), add_special_tokens=False)


class ScriptedModel(nn.Module):
    """``trimmable=False``: its cache also holds a running state (an ``ArraysCache``, as hybrid attention/SSM
    models have), so it cannot be trimmed and only stored prefixes themselves can be reused."""

    def __init__(self, tokenizer: TokenizerWrapper, respond: Callable[[str], str], vocab_size: int, trimmable: bool = True):
        super().__init__()
        self._trimmable = trimmable
        self._tokenizer = tokenizer
        self._respond = respond
        self._vocab = vocab_size
        self._marker = generation_marker(tokenizer)
        self._eos = min(tokenizer.eos_token_ids)
        self._plans: dict[tuple[int, ...], list[int]] = {}
        # Where a constraint forbids the script's token, the model leans towards ending: closing quotes
        # and brackets, then the end of the answer (a real model, out of its depth, wanders off instead).
        self._lean = mx.zeros((vocab_size,))
        for weight, text in enumerate(["]", "}", '"']):
            (token,) = tokenizer.encode(text, add_special_tokens=False)
            self._lean = self._lean.at[token].add(weight + 1)
        self._lean = self._lean.at[self._eos].add(4)
        self.prompts: list[str] = []  # the prompts the model answered (the last KEPT), for assertions
        self.calls = 0  # forward passes run: the engine-side work, for cancellation tests
        self.widest = 0  # the most rows one forward pass had: requests that ran in one batch
        self.step_delay = 0.0  # seconds each forward pass takes: a slow model, set by tests
        self.forwards: list[tuple[int, int]] = []  # the last forward passes' input shapes: (rows, tokens per row)
        self.on_forward: Callable[[int, int], None] | None = None  # called with that shape as a pass starts
        self.token_delay = 0.0  # ... and for each token it reads: a model whose cost grows with its input

    def make_cache(self):
        return [KVCache()] if self._trimmable else [KVCache(), ArraysCache(size=1)]

    def _reply_start(self, row: list[int]) -> int | None:
        """Where the assistant's reply begins: after the last generation marker."""
        m = self._marker
        for end in range(len(row), len(m) - 1, -1):
            if row[end - len(m) : end] == m:
                return end
        return None  # mid-prefill: the prompt is not complete yet

    def _plan(self, row: list[int], *, create: bool) -> tuple[list[int], int] | None:
        """(the reply's tokens, where it starts in ``row``): the reply under way in ``row`` (its
        prompt, then the part of it generated so far), else, with ``create``, a new one.

        The prompt may hold the first part of the reply (a prefilled tool call, a think
        block the template opened): the reply is what ``respond`` returns for the whole
        prompt, and continues it. A reply may hold the generation marker itself (Harmony's
        messages each begin ``<|start|>assistant``).
        """
        for prompt, plan in self._plans.items():
            end = len(prompt)
            if end <= len(row) and row[end:] == plan[: len(row) - end] and tuple(row[:end]) == prompt:
                self._plans[prompt] = self._plans.pop(prompt)  # in use: the last to be forgotten
                return plan, end
        # A constraint masked the script's token, so the row left the plan: go on with it by position
        # (the plan of the longest prompt the row starts with).
        # Only a prompt that ends after the row's last generation marker: an earlier turn's
        # prompt is the start of every later turn's.
        start = self._reply_start(row) or len(row)
        started = [
            (len(prompt), plan)
            for prompt, plan in self._plans.items()
            if len(prompt) >= start and tuple(row[: len(prompt)]) == prompt
        ]
        if started:
            end, plan = max(started, key=lambda found: found[0])
            return plan, end
        if not create:
            return None
        text = self._tokenizer.decode(row)
        self.prompts.append(text)
        reply = self._respond(text)
        end = FAIL if isinstance(reply, Fail) else self._eos
        plan = self._tokenizer.encode(reply, add_special_tokens=False) + [end]
        self._plans[tuple(row)] = plan
        if len(self._plans) > KEPT:  # the oldest replies ended long ago (dicts keep insertion order)
            del self._plans[next(iter(self._plans))]
            del self.prompts[: -KEPT]
        return plan, len(row)

    def __call__(self, inputs: mx.array, cache=None, **_kwargs) -> mx.array:
        """The logits of the last position; of every position for a short input (a speculating step
        verifies each of its proposals), as a real model's."""
        self.calls += 1
        self.forwards.append(inputs.shape)
        if len(self.forwards) > 2 * KEPT_FORWARDS:  # a long run (the soak) stays bounded
            del self.forwards[:-KEPT_FORWARDS]
        if self.on_forward is not None:
            self.on_forward(*inputs.shape)
        if self.step_delay or self.token_delay:
            time.sleep(self.step_delay + self.token_delay * inputs.size)
        batch, length = inputs.shape
        self.widest = max(self.widest, batch)
        keys = inputs.astype(mx.float32).reshape(batch, 1, length, 1)
        seen, _ = cache[0].update_and_fetch(keys, keys)
        if len(cache) > 1:  # the running state: tokens read so far
            state = cache[1][0]
            cache[1][0] = (state if state is not None else mx.zeros((batch, 1))) + length
        # A batch's cache left-pads its rows (and re-pads them as requests join and leave); a speculating
        # batch's rows also leave holes where they dropped the proposals they did not keep.
        padding = cache[0].left_padding.tolist() if hasattr(cache[0], "left_padding") else [0] * batch
        live = cache[0].live.tolist() if getattr(cache[0], "live", None) is not None else None
        positions = range(length) if length <= VERIFY_WIDTH else [length - 1]
        logits = []
        for i, (pad, row) in enumerate(zip(padding, seen[:, 0, :, 0].astype(mx.int32).tolist())):
            row = [t for j, t in enumerate(row) if j >= pad and (live is None or live[i][j])]
            logits.append(mx.stack([self._logits(row[: len(row) - (length - 1 - j)], create=length == 1) for j in positions]))
        return mx.stack(logits)

    def _logits(self, row: list[int], create: bool) -> mx.array:
        """The next token's logits after ``row`` (a row's tokens, without padding)."""
        if self._reply_start(row) is None:
            return mx.zeros((self._vocab,))
        # Only the step that samples a reply's first token asks for a reply: a prefill chunk may also
        # end just after an earlier turn's marker, and must not call respond.
        found = self._plan(row, create=create)
        if found is None:
            return mx.zeros((self._vocab,))
        plan, reply_start = found
        k = len(row) - reply_start
        target = plan[k] if k < len(plan) else self._eos
        if target == FAIL:
            raise RuntimeError("scripted failure")
        return self._lean.at[target].add(FORCE)


class Recording:
    """A ``respond`` that remembers every prompt it answered (the rendered chat template text)."""

    def __init__(self, respond: Callable[[str], str]):
        self.respond = respond
        self.prompts: list[str] = []

    def __call__(self, prompt: str) -> str:
        self.prompts.append(prompt)
        return self.respond(prompt)


def scripted_loaded_model(
    tokenizer_dir: Path,
    respond: Callable[[str], str],
    *,
    name: str = "scripted",
    context_window: int = 2048,
    tokenizer: TokenizerWrapper | None = None,
    trimmable: bool = True,
) -> LoadedModel:
    tokenizer = tokenizer or shared_tokenizer(tokenizer_dir)
    model = ScriptedModel(tokenizer, respond, vocab_size=len(tokenizer), trimmable=trimmable)
    return LoadedModel(
        name=name,
        path=tokenizer_dir,
        model=model,
        tokenizer=tokenizer,
        config={},
        context_window=context_window,
        dtype="scripted",
        load_seconds=0.0,
    )


def scripted_model(
    tokenizer_dir: Path,
    respond: Callable[[str], str],
    *,
    name: str = "scripted",
    aliases: tuple[str, ...] = (),
    context_window: int = 2048,
    spec: ModelSpec | None = None,
    on_load: Callable[[str], None] | None = None,
    tokenizer: TokenizerWrapper | None = None,
    trimmable: bool = True,
    settings: EngineSettings | None = None,
) -> ServedModel:
    """A scripted model to serve; ``on_load(name)`` runs on the engine thread each time it loads. It
    speculates as ``spec`` (else ``settings``) says, as a model the text kind serves would.

    Without ``tokenizer``, the one in ``tokenizer_dir`` (loaded once per session: ``shared_tokenizer``).
    """
    tokenizer = tokenizer or shared_tokenizer(tokenizer_dir)
    settings = settings or EngineSettings()

    def load() -> LoadedModel:
        if on_load is not None:
            on_load(name)
        return scripted_loaded_model(
            tokenizer_dir, respond, name=name, context_window=context_window, tokenizer=tokenizer, trimmable=trimmable
        )

    spec = spec or ModelSpec(model=name)
    load = speculation_setup.speculating(load, speculation_setup.wanted(spec, settings), settings)
    return ServedModel(name=name, tokenizer=tokenizer, context_window=context_window, load=load, aliases=aliases, spec=spec)


def scripted_of(engine) -> ScriptedModel:
    """The scripted model an engine serves as its default (loaded) model, for assertions and knobs."""
    loaded = engine.registry.default.loaded
    assert loaded is not None, "the default model is not loaded"
    return loaded.model

"""``tiny:WIDTHxLAYERS``: a random model with the default model's tokenizer, for measuring what a step
costs besides the model (the forward pass nearly free: the fast-GPU regime on a CPU).

A Llama of the default model's shape (its vocabulary, tied embeddings, head size, the ratio of its MLP
to its width and of its query to key/value heads) at WIDTH and LAYERS, random float32 weights (so every
server runs it as stored), built once into ``data_home()/cache/tiny-WIDTHxLAYERS`` (atomically, as a
model install). It is never under ``models_dir()``, so no server lists it or loads it by name, and the
name itself (``:``) is refused everywhere but ``mlxcli bench``; serving it takes its directory, on
purpose. The tokenizer's special tokens get zero embeddings: their logits are then 0 where every
answer's best token scores above it, so a greedy answer never ends early and two servers running it
give the same number of tokens.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from mlxcli.core.errors import InvalidRequest
from mlxcli.models.aliases import DEFAULT_MODEL
from mlxcli.paths import data_home

PREFIX = "tiny:"
PATTERN = re.compile(r"tiny:(\d{1,5})x(\d{1,3})")
MAX_WIDTH, MAX_LAYERS = 4096, 64
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "generation_config.json")
SEED = 0
FORMAT = 1  # bumped when the model built for a name changes: an older build is then rebuilt


def is_tiny(name: str | None) -> bool:
    return name is not None and name.startswith(PREFIX)


def parse(name: str) -> tuple[int, int]:
    """``tiny:64x2`` → (64, 2); a clear error for anything else."""
    match = PATTERN.fullmatch(name.strip())
    if not match:
        raise InvalidRequest(f"{name!r} is not a tiny model: expected tiny:WIDTHxLAYERS, e.g. tiny:64x2", param="model")
    width, layers = int(match[1]), int(match[2])
    if not (16 <= width <= MAX_WIDTH and width % 16 == 0):
        raise InvalidRequest(f"{name}: WIDTH must be a multiple of 16 from 16 to {MAX_WIDTH}", param="model")
    if not 1 <= layers <= MAX_LAYERS:
        raise InvalidRequest(f"{name}: LAYERS must be from 1 to {MAX_LAYERS}", param="model")
    return width, layers


def cache_dir(home: Path | None = None) -> Path:
    return (home or data_home()) / "cache"


def tiny_model(name: str, *, home: Path | None = None):
    """The ``LocalModel`` of ``tiny:WIDTHxLAYERS``, built on first use (the default model is pulled
    for its tokenizer if it is not here yet)."""
    from mlxcli.models import pull
    from mlxcli.models.install import install, read_marker
    from mlxcli.models.resolve import LocalModel

    width, layers = parse(name)
    directory_name = f"tiny-{width}x{layers}"
    parent = cache_dir(home)
    final = parent / directory_name

    def current() -> bool:
        marker = read_marker(final)
        return marker is not None and marker.get("tiny_format") == FORMAT

    if not current():
        source = pull(DEFAULT_MODEL, home=home).path
        install(parent, directory_name, lambda tmp: build(source, tmp, width, layers), is_current=current)
    return LocalModel(f"tiny:{width}x{layers}", final, "tiny")


def shape(source_config: dict, width: int, layers: int) -> dict:
    """The default model's config at ``width`` and ``layers``."""
    head_dim = min(int(source_config.get("head_dim") or 64), width)
    heads = width // head_dim
    group = max(1, source_config["num_attention_heads"] // source_config["num_key_value_heads"])
    kv_heads = max(d for d in range(1, heads + 1) if heads % d == 0 and d <= max(1, heads // group))
    ratio = source_config["intermediate_size"] / source_config["hidden_size"]
    keep = ("vocab_size", "rms_norm_eps", "rope_theta", "max_position_embeddings", "tie_word_embeddings",
            "bos_token_id", "eos_token_id", "pad_token_id")
    return {
        "model_type": "llama",
        "architectures": ["LlamaForCausalLM"],
        **{k: source_config[k] for k in keep if k in source_config},
        "hidden_size": width,
        "num_hidden_layers": layers,
        "intermediate_size": int(round(width * ratio / 16)) * 16,
        "num_attention_heads": heads,
        "num_key_value_heads": kv_heads,
        "head_dim": head_dim,
        "torch_dtype": "float32",
    }


def build(source: Path, dst: Path, width: int, layers: int) -> dict:
    """Write the random model into ``dst`` (its tokenizer copied from ``source``); the marker's fields."""
    import shutil

    import mlx.core as mx
    from mlx.utils import tree_flatten
    from mlx_lm.models import llama
    from mlx_lm.utils import load_tokenizer

    config = shape(json.loads((source / "config.json").read_text()), width, layers)
    mx.random.seed(SEED)
    model = llama.Model(llama.ModelArgs.from_dict(config))
    special = sorted(set(load_tokenizer(source).all_special_ids))
    embed = model.model.embed_tokens.weight
    model.model.embed_tokens.weight = embed.at[mx.array(special)].multiply(0.0) if special else embed
    weights = dict(tree_flatten(model.parameters()))
    mx.eval(weights)
    mx.save_safetensors(str(dst / "model.safetensors"), weights)
    (dst / "config.json").write_text(json.dumps(config, indent=1) + "\n")
    for file in TOKENIZER_FILES:
        if (source / file).exists():
            shutil.copy(source / file, dst / file)
    parameters = sum(v.size for v in weights.values())
    return {"source": "tiny", "tiny_format": FORMAT, "tokenizer": DEFAULT_MODEL, "width": width, "layers": layers,
            "parameters": parameters}


def main(argv: list[str] | None = None) -> int:
    """``python -m mlxcli.bench.tiny tiny:WIDTHxLAYERS``: build it if needed, print its directory."""
    import sys

    from mlxcli.core.errors import MlxcliError

    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m mlxcli.bench.tiny tiny:WIDTHxLAYERS", file=sys.stderr)
        return 2
    try:
        print(tiny_model(args[0]).path)
    except MlxcliError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

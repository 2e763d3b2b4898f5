"""The llama architecture in GGUF terms: hyper-parameters, tensor names, q/k row order.

- ``llama_config``: the mlx-lm ``config.json`` fields from the GGUF metadata; anything llama in
  mlx-lm cannot represent (other architectures, experts, partial RoPE, RoPE scaling other than
  linear, frequency factors) is refused.
- ``plan_tensors``: each GGUF tensor's MLX module path, refusing tensors a plain llama has not.
- llama.cpp stores the q and k projections with their rows permuted for its RoPE layout
  (``permute`` in llama.cpp's ``convert_hf_to_gguf.py``); ``unpermute_rows`` puts them back, for
  ``weight``, ``scales`` and ``biases`` alike.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from mlxcli.core.errors import ModelError
from mlxcli.models.gguf.header import (
    GGML_F16,
    GGML_F32,
    SUPPORTED_TENSOR_TYPES,
    GGUFHeader,
    TensorInfo,
    meta_value,
)

_LAYER_TENSORS = {
    "attn_q": "self_attn.q_proj",
    "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj",
    "ffn_gate": "mlp.gate_proj",
    "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
    "attn_norm": "input_layernorm",
    "ffn_norm": "post_attention_layernorm",
}
_GLOBAL_TENSORS = {"token_embd": "model.embed_tokens", "output_norm": "model.norm", "output": "lm_head"}


def _int_meta(md: dict[str, Any], key: str, default: Any = ...) -> int:
    value = meta_value(md, key, default)
    if isinstance(value, list):  # per-layer values (e.g. variable head counts)
        raise ModelError(f"GGUF metadata {key!r} varies per layer; not supported for llama")
    return int(value)


def llama_config(header: GGUFHeader) -> dict[str, Any]:
    """The mlx-lm ``config.json`` fields (without quantization) for a llama GGUF."""
    md = header.metadata
    arch = md.get("general.architecture")
    if arch != "llama":
        raise ModelError(f"GGUF architecture {arch!r} is not supported (only 'llama')")
    if _int_meta(md, "llama.expert_count", 0) > 0:
        raise ModelError("mixture-of-experts llama GGUFs are not supported")
    hidden = _int_meta(md, "llama.embedding_length")
    n_heads = _int_meta(md, "llama.attention.head_count")
    n_kv = _int_meta(md, "llama.attention.head_count_kv", n_heads)
    head_dim = _int_meta(md, "llama.attention.key_length", hidden // n_heads if n_heads else 0)
    rope_dim = _int_meta(md, "llama.rope.dimension_count", head_dim)
    if n_heads <= 0 or n_kv <= 0 or n_heads % n_kv or head_dim <= 0:
        raise ModelError(f"implausible head counts: {n_heads} heads, {n_kv} kv heads, head dim {head_dim}")
    if rope_dim != head_dim or _int_meta(md, "llama.attention.value_length", head_dim) != head_dim:
        raise ModelError("partial rotary embeddings / different value head size are not supported")
    embd = header.tensors.get("token_embd.weight")
    if embd is None or len(embd.shape) != 2:
        raise ModelError("GGUF has no 2-D token_embd.weight tensor")
    config: dict[str, Any] = {
        "model_type": "llama",
        "architectures": ["LlamaForCausalLM"],
        "hidden_size": hidden,
        "intermediate_size": _int_meta(md, "llama.feed_forward_length"),
        "num_hidden_layers": _int_meta(md, "llama.block_count"),
        "num_attention_heads": n_heads,
        "num_key_value_heads": n_kv,
        "head_dim": head_dim,
        "rms_norm_eps": float(meta_value(md, "llama.attention.layer_norm_rms_epsilon")),
        "rope_theta": float(meta_value(md, "llama.rope.freq_base", 10000.0)),
        "vocab_size": embd.shape[0],
        "max_position_embeddings": _int_meta(md, "llama.context_length"),
        "tie_word_embeddings": "output.weight" not in header.tensors,
    }
    scaling = md.get("llama.rope.scaling.type", "none")
    if scaling == "linear":
        config["rope_scaling"] = {"type": "linear", "factor": float(meta_value(md, "llama.rope.scaling.factor"))}
    elif scaling != "none":
        raise ModelError(f"RoPE scaling {scaling!r} is not supported (only linear)")
    if "rope_freqs.weight" in header.tensors:
        raise ModelError("llama3-style RoPE frequency factors (rope_freqs) are not supported")
    return config


def _mlx_name(gguf_base: str, n_layers: int) -> str | None:
    """``blk.3.attn_q`` -> ``model.layers.3.self_attn.q_proj``; None when not a llama tensor."""
    if gguf_base in _GLOBAL_TENSORS:
        return _GLOBAL_TENSORS[gguf_base]
    parts = gguf_base.split(".")
    if len(parts) == 3 and parts[0] == "blk" and parts[1].isdigit() and parts[2] in _LAYER_TENSORS:
        if int(parts[1]) < n_layers:
            return f"model.layers.{int(parts[1])}.{_LAYER_TENSORS[parts[2]]}"
    return None


def unpermute_rows(a: Any, n_heads: int) -> Any:
    """Undo llama.cpp's q/k row permutation (inverse of its ``permute``).

    llama.cpp maps each head's rows (two halves of ``head_dim/2``) to interleaved pairs:
    ``reshape(n, 2, d/2, ...).swapaxes(1, 2)``; this is the reverse.
    """
    rows = a.shape[0]
    return a.reshape(n_heads, rows // n_heads // 2, 2, *a.shape[1:]).swapaxes(1, 2).reshape(a.shape)


def plan_tensors(header: GGUFHeader, config: dict[str, Any]) -> dict[str, tuple[str, TensorInfo]]:
    """GGUF base name -> (MLX module path, tensor info); refuses tensors llama cannot hold."""
    plan: dict[str, tuple[str, TensorInfo]] = {}
    for name, info in header.tensors.items():
        base, _, suffix = name.rpartition(".")
        target = _mlx_name(base, config["num_hidden_layers"]) if suffix == "weight" else None
        if target is None:
            raise ModelError(f"unexpected tensor {name!r}: not a plain llama layout")
        if len(info.shape) == 1 and info.ggml_type not in (GGML_F32, GGML_F16):
            raise ModelError(f"tensor {name!r}: quantized 1-D tensors are not supported")
        plan[base] = (target, info)
    head_dim = config["head_dim"]
    for base, heads in (("attn_q", config["num_attention_heads"]), ("attn_k", config["num_key_value_heads"])):
        for i in range(config["num_hidden_layers"]):
            entry = plan.get(f"blk.{i}.{base}")
            if entry is None:
                raise ModelError(f"GGUF is missing tensor blk.{i}.{base}.weight")
            if entry[1].shape[0] != heads * head_dim or head_dim % 2:
                raise ModelError(f"blk.{i}.{base}.weight has {entry[1].shape[0]} rows, "
                                 f"expected {heads} heads x {head_dim}")
    return plan


def quantization_config(plan: dict[str, tuple[str, TensorInfo]]) -> dict[str, Any] | None:
    """Most common (group_size, bits) as default, per-layer entries where a layer differs."""
    per_layer = {target: SUPPORTED_TENSOR_TYPES[info.ggml_type][2] for target, info in plan.values()}
    quantized = {k: v for k, v in per_layer.items() if v is not None}
    if not quantized:
        return None
    (group_size, bits), _ = Counter(quantized.values()).most_common(1)[0]
    config: dict[str, Any] = {"group_size": group_size, "bits": bits, "mode": "affine"}
    for target, (gs, b) in sorted(quantized.items()):
        if (gs, b) != (group_size, bits):
            config[target] = {"group_size": gs, "bits": b, "mode": "affine"}
    return config

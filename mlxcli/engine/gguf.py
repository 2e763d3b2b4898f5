"""GGUF → MLX conversion for llama-architecture models.

``convert_gguf(src, dst)`` writes a directory that ``mlx_lm.load`` reads: ``config.json``,
``model.safetensors``, ``tokenizer.json``, ``tokenizer_config.json`` (with the chat template),
``special_tokens_map.json`` and ``generation_config.json``.

What it takes from llama.cpp's conventions:

- Tensors: ``mx.load`` reads GGUF natively and returns Q4_0/Q4_1/Q8_0 tensors as MLX affine
  triplets (``weight``/``scales``/``biases``, group size 32), which load as-is into
  ``QuantizedLinear``/``QuantizedEmbedding``. Any other quantized type would be silently
  dequantized (or zero-filled) by MLX, so the header is read here first and such files are refused.
- llama.cpp stores the q and k projections with their rows permuted for its RoPE layout
  (``permute`` in llama.cpp's ``convert_hf_to_gguf.py``); the rows are put back here, for
  ``weight``, ``scales`` and ``biases`` alike.
- Tokenizer: GPT-2 byte-level BPE (``tokenizer.ggml.model == "gpt2"``). The pre-tokenizer is
  rebuilt from llama.cpp's own regex list for ``tokenizer.ggml.pre`` (one ``Split`` per regex,
  applied in sequence like ``unicode_regex_split``, then byte-level mapping), so tokenization
  matches llama.cpp's.
"""

from __future__ import annotations

import json
import mmap
import struct
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mlxcli.core.errors import ModelError

Progress = Callable[[str, int, "int | None"], None]

# ---------------------------------------------------------------------------------------------
# GGUF header
# ---------------------------------------------------------------------------------------------

GGML_F32, GGML_F16, GGML_Q4_0, GGML_Q4_1, GGML_Q8_0 = 0, 1, 2, 3, 8

GGML_TYPE_NAMES = {
    0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 6: "Q5_0", 7: "Q5_1", 8: "Q8_0", 9: "Q8_1",
    10: "Q2_K", 11: "Q3_K", 12: "Q4_K", 13: "Q5_K", 14: "Q6_K", 15: "Q8_K", 16: "IQ2_XXS",
    17: "IQ2_XS", 18: "IQ3_XXS", 19: "IQ1_S", 20: "IQ4_NL", 21: "IQ3_S", 22: "IQ2_S",
    23: "IQ4_XS", 24: "I8", 25: "I16", 26: "I32", 27: "I64", 28: "F64", 29: "IQ1_M",
    30: "BF16", 34: "TQ1_0", 35: "TQ2_0", 39: "MXFP4",
}

# type -> (elements per block, bytes per block, MLX quantization (group_size, bits) or None)
SUPPORTED_TENSOR_TYPES: dict[int, tuple[int, int, tuple[int, int] | None]] = {
    GGML_F32: (1, 4, None),
    GGML_F16: (1, 2, None),
    GGML_Q4_0: (32, 18, (32, 4)),
    GGML_Q4_1: (32, 20, (32, 4)),
    GGML_Q8_0: (32, 34, (32, 8)),
}

_MAX_COUNT = 1 << 24  # sanity bound on counts read from an untrusted header


@dataclass(frozen=True)
class TensorInfo:
    name: str
    shape: tuple[int, ...]  # numpy / MLX order (GGUF stores the reverse)
    ggml_type: int
    offset: int  # relative to the start of the data section

    @property
    def type_name(self) -> str:
        return GGML_TYPE_NAMES.get(self.ggml_type, f"type {self.ggml_type}")


@dataclass(frozen=True)
class GGUFHeader:
    version: int
    metadata: dict[str, Any]
    tensors: dict[str, TensorInfo]
    data_offset: int
    file_size: int


class _Reader:
    """Little-endian cursor over the mapped file; every read is bounds-checked."""

    _SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?",
                10: "<Q", 11: "<q", 12: "<d"}
    _NUMPY = {0: "<u1", 1: "<i1", 2: "<u2", 3: "<i2", 4: "<u4", 5: "<i4", 6: "<f4", 7: "<u1",
              10: "<u8", 11: "<i8", 12: "<f8"}

    def __init__(self, buf: mmap.mmap | bytes):
        self.buf = buf
        self.pos = 0

    def unpack(self, fmt: str) -> Any:
        value = struct.unpack_from(fmt, self.buf, self.pos)[0]
        self.pos += struct.calcsize(fmt)
        return value

    def count(self) -> int:
        n = self.unpack("<Q")
        if n > _MAX_COUNT:
            raise ModelError(f"GGUF header count {n} is implausible (corrupt file?)")
        return n

    def string(self) -> str:
        n = self.unpack("<Q")
        if n > len(self.buf) - self.pos:
            raise struct.error("string past end of file")
        raw = self.buf[self.pos : self.pos + n]
        self.pos += n
        return raw.decode("utf-8", errors="replace")

    def value(self, vtype: int) -> Any:
        if vtype in self._SCALARS:
            return self.unpack(self._SCALARS[vtype])
        if vtype == 8:
            return self.string()
        if vtype == 9:
            etype, n = self.unpack("<I"), self.count()
            if etype == 8:
                return [self.string() for _ in range(n)]
            if etype in self._NUMPY:
                dtype = np.dtype(self._NUMPY[etype])
                end = self.pos + n * dtype.itemsize
                if end > len(self.buf):
                    raise struct.error("array past end of file")
                arr = np.frombuffer(self.buf, dtype=dtype, count=n, offset=self.pos)
                self.pos = end
                return arr.astype(bool).tolist() if etype == 7 else arr.tolist()
            raise ModelError(f"unsupported GGUF metadata array element type {etype}")
        raise ModelError(f"unsupported GGUF metadata value type {vtype}")


def read_gguf_header(path: Path) -> GGUFHeader:
    """Metadata and tensor table of a GGUF file, checked against the file's size."""
    try:
        with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            return _parse_header(buf)
    except ModelError:
        raise
    except (struct.error, ValueError, OSError) as e:
        raise ModelError(f"{path}: not a readable GGUF file ({e})") from e


def _parse_header(buf: mmap.mmap) -> GGUFHeader:
    r = _Reader(buf)
    if r.unpack("<4s") != b"GGUF":
        raise ModelError("not a GGUF file (bad magic)")
    version = r.unpack("<I")
    if version not in (2, 3):
        raise ModelError(f"unsupported GGUF version {version} (need 2 or 3)")
    n_tensors, n_kv = r.count(), r.count()
    metadata: dict[str, Any] = {}
    for _ in range(n_kv):
        key = r.string()
        metadata[key] = r.value(r.unpack("<I"))
    tensors: dict[str, TensorInfo] = {}
    for _ in range(n_tensors):
        name = r.string()
        n_dims = r.unpack("<I")
        if n_dims > 4:
            raise ModelError(f"tensor {name}: {n_dims} dimensions")
        dims = [r.unpack("<Q") for _ in range(n_dims)]
        ggml_type, offset = r.unpack("<I"), r.unpack("<Q")
        tensors[name] = TensorInfo(name, tuple(reversed(dims)), ggml_type, offset)
    alignment = int(metadata.get("general.alignment", 32)) or 32
    data_offset = -(-r.pos // alignment) * alignment
    return GGUFHeader(version, metadata, tensors, data_offset, len(buf))


def _check_tensor_types(header: GGUFHeader) -> None:
    bad = sorted({t.type_name for t in header.tensors.values()
                  if t.ggml_type not in SUPPORTED_TENSOR_TYPES})
    if bad:
        ok = ", ".join(GGML_TYPE_NAMES[t] for t in SUPPORTED_TENSOR_TYPES)
        raise ModelError(
            f"GGUF tensor type(s) {', '.join(bad)} are not supported (supported: {ok}); "
            "use a Q4_0, Q4_1, Q8_0, F16 or F32 GGUF"
        )
    for t in header.tensors.values():
        block, size, _ = SUPPORTED_TENSOR_TYPES[t.ggml_type]
        n = int(np.prod(t.shape)) if t.shape else 1
        if t.shape and t.shape[-1] % block:
            raise ModelError(f"tensor {t.name}: row length {t.shape[-1]} is not a multiple of {block}")
        end = header.data_offset + t.offset + n // block * size
        if end > header.file_size:
            raise ModelError(f"tensor {t.name} extends past the end of the file (truncated download?)")


# ---------------------------------------------------------------------------------------------
# Model: hyper-parameters, tensor names, q/k permutation
# ---------------------------------------------------------------------------------------------

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


def _meta(md: dict[str, Any], key: str, default: Any = ...) -> Any:
    if key in md:
        return md[key]
    if default is ...:
        raise ModelError(f"GGUF metadata is missing {key!r}")
    return default


def _int_meta(md: dict[str, Any], key: str, default: Any = ...) -> int:
    value = _meta(md, key, default)
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
        "rms_norm_eps": float(_meta(md, "llama.attention.layer_norm_rms_epsilon")),
        "rope_theta": float(_meta(md, "llama.rope.freq_base", 10000.0)),
        "vocab_size": embd.shape[0],
        "max_position_embeddings": _int_meta(md, "llama.context_length"),
        "tie_word_embeddings": "output.weight" not in header.tensors,
    }
    scaling = md.get("llama.rope.scaling.type", "none")
    if scaling == "linear":
        config["rope_scaling"] = {"type": "linear", "factor": float(_meta(md, "llama.rope.scaling.factor"))}
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


def _plan_tensors(header: GGUFHeader, config: dict[str, Any]) -> dict[str, tuple[str, TensorInfo]]:
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


def _quantization_config(plan: dict[str, tuple[str, TensorInfo]]) -> dict[str, Any] | None:
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


# ---------------------------------------------------------------------------------------------
# Tokenizer
# ---------------------------------------------------------------------------------------------

TOKEN_NORMAL, TOKEN_UNKNOWN, TOKEN_CONTROL, TOKEN_USER_DEFINED = 1, 2, 3, 4

# llama.cpp's pre-tokenizer regexes (llama-vocab.cpp, llm_tokenizer_bpe), applied in sequence.
_GPT2 = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)"
_LLAMA3 = (r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+"
           r"|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
_QWEN2 = (r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+"
          r"|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")


@dataclass(frozen=True)
class _PreTokenizer:
    regexes: tuple[str, ...]
    ignore_merges: bool = False  # llama3: a word already in the vocabulary is one token
    add_bos: bool = False  # llama.cpp's default when the GGUF does not say


_PRE_TOKENIZERS: dict[str, _PreTokenizer] = {
    "default": _PreTokenizer((r"[\p{P}\$\+<=>\^~\|]+", _GPT2, r"\p{N}+", r"[0-9][0-9][0-9]")),
    **dict.fromkeys(("gpt-2", "gpt2", "phi-2", "mpt", "olmo", "jais"), _PreTokenizer((_GPT2,))),
    **dict.fromkeys(("smollm", "starcoder", "refact", "command-r", "codeshell", "exaone", "minerva"),
                    _PreTokenizer((r"\p{N}", _GPT2))),
    **dict.fromkeys(("llama3", "llama-v3", "llama-bpe", "falcon3", "pixtral", "dbrx", "smaug-bpe"),
                    _PreTokenizer((_LLAMA3,), ignore_merges=True, add_bos=True)),
    "falcon": _PreTokenizer((r"[\p{P}\$\+<=>\^~\|`]+", _GPT2, r"[0-9][0-9][0-9]")),
    **dict.fromkeys(("qwen2", "stablelm2"), _PreTokenizer((_QWEN2,))),
}


def _token_id(md: dict[str, Any], key: str, n_tokens: int) -> int | None:
    value = md.get(f"tokenizer.ggml.{key}_token_id")
    if value is None:
        return None
    value = int(value)
    if not 0 <= value < n_tokens:
        raise ModelError(f"tokenizer.ggml.{key}_token_id {value} is outside the vocabulary")
    return value


def build_tokenizer_files(md: dict[str, Any], context_length: int | None = None) -> dict[str, dict[str, Any]]:
    """``tokenizer.json``, ``tokenizer_config.json`` and ``special_tokens_map.json`` contents."""
    kind = md.get("tokenizer.ggml.model")
    if kind != "gpt2":
        raise ModelError(
            f"tokenizer model {kind!r} is not supported (only GPT-2 byte-level BPE, 'gpt2')"
        )
    tokens: list[str] = _meta(md, "tokenizer.ggml.tokens")
    merges: list[str] = _meta(md, "tokenizer.ggml.merges")
    types: list[int] = md.get("tokenizer.ggml.token_type") or [TOKEN_NORMAL] * len(tokens)
    if len(types) != len(tokens):
        raise ModelError("tokenizer.ggml.token_type and tokenizer.ggml.tokens differ in length")
    pre_name = md.get("tokenizer.ggml.pre", "default")
    pre = _PRE_TOKENIZERS.get(pre_name)
    if pre is None:
        raise ModelError(
            f"pre-tokenizer {pre_name!r} is not supported (supported: {', '.join(sorted(_PRE_TOKENIZERS))})"
        )

    vocab: dict[str, int] = {}
    for i, tok in enumerate(tokens):
        vocab.setdefault(tok, i)  # duplicates (rare padding entries): the first id keeps the text
    pairs = []
    for merge in merges:
        left, sep, right = merge.partition(" ")
        if not sep or not left or not right or " " in right:
            raise ModelError(f"malformed BPE merge {merge!r}")
        pairs.append([left, right])

    n = len(tokens)
    special_ids = {_token_id(md, k, n) for k in ("bos", "eos", "unknown", "padding", "eot", "eom")} - {None}
    added, seen = [], set()
    for i, (tok, ttype) in enumerate(zip(tokens, types, strict=True)):
        special = ttype == TOKEN_CONTROL or i in special_ids
        # Control tokens are special; user-defined ones (stored pre-normalized, as raw text)
        # are matched in text like llama.cpp does, but are ordinary text when decoded.
        if (special or ttype == TOKEN_USER_DEFINED) and tok not in seen:
            seen.add(tok)
            added.append({"id": i, "content": tok, "single_word": False, "lstrip": False,
                          "rstrip": False, "normalized": False, "special": special})

    bos, eos = _token_id(md, "bos", n), _token_id(md, "eos", n)
    add_bos = bool(md.get("tokenizer.ggml.add_bos_token", pre.add_bos)) and bos is not None
    add_eos = bool(md.get("tokenizer.ggml.add_eos_token", False)) and eos is not None
    tokenizer_json = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": None,
        "pre_tokenizer": {
            "type": "Sequence",
            "pretokenizers": [
                *({"type": "Split", "pattern": {"Regex": rx}, "behavior": "Isolated", "invert": False}
                  for rx in pre.regexes),
                {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False},
            ],
        },
        "post_processor": _post_processor(tokens, bos if add_bos else None, eos if add_eos else None),
        # ByteLevel decoder: mlx_lm picks its BPE streaming detokenizer from this.
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": {
            "type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
            "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False,
            "ignore_merges": pre.ignore_merges, "vocab": vocab, "merges": pairs,
        },
    }

    def text(key: str) -> str | None:
        i = _token_id(md, key, n)
        return None if i is None else tokens[i]

    specials = {"bos_token": text("bos"), "eos_token": text("eos"),
                "unk_token": text("unknown"), "pad_token": text("padding")}
    specials = {k: v for k, v in specials.items() if v is not None}
    tokenizer_config: dict[str, Any] = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        **specials,
        "add_bos_token": add_bos,
        "add_eos_token": add_eos,
        # Lossy space clean-up would make batch decode differ from mlx_lm's streaming decode.
        "clean_up_tokenization_spaces": False,
        "model_max_length": context_length or 1_000_000_000,
    }
    template = md.get("tokenizer.chat_template")
    if isinstance(template, str) and template:
        tokenizer_config["chat_template"] = template
    return {
        "tokenizer.json": tokenizer_json,
        "tokenizer_config.json": tokenizer_config,
        "special_tokens_map.json": specials,
    }


def _post_processor(tokens: list[str], bos: int | None, eos: int | None) -> dict[str, Any] | None:
    if bos is None and eos is None:
        return None
    special = [(tokens[i], i) for i in (bos, eos) if i is not None]
    head = [{"SpecialToken": {"id": tokens[bos], "type_id": 0}}] if bos is not None else []
    tail = [{"SpecialToken": {"id": tokens[eos], "type_id": 0}}] if eos is not None else []
    return {
        "type": "TemplateProcessing",
        "single": [*head, {"Sequence": {"id": "A", "type_id": 0}}, *tail],
        "pair": [*head, {"Sequence": {"id": "A", "type_id": 0}}, *tail,
                 *head, {"Sequence": {"id": "B", "type_id": 1}}, *tail],
        "special_tokens": {t: {"id": t, "ids": [i], "tokens": [t]} for t, i in special},
    }


def generation_ids(md: dict[str, Any]) -> dict[str, Any]:
    """bos/eos/pad ids for config.json and generation_config.json (eos: every end-of-turn id)."""
    n = len(md.get("tokenizer.ggml.tokens") or [])
    eos = [i for k in ("eos", "eot", "eom") if (i := _token_id(md, k, n)) is not None]
    ids: dict[str, Any] = {}
    if (bos := _token_id(md, "bos", n)) is not None:
        ids["bos_token_id"] = bos
    if eos:
        unique = list(dict.fromkeys(eos))
        ids["eos_token_id"] = unique[0] if len(unique) == 1 else unique
    if (pad := _token_id(md, "padding", n)) is not None:
        ids["pad_token_id"] = pad
    return ids


# ---------------------------------------------------------------------------------------------
# Conversion
# ---------------------------------------------------------------------------------------------


def convert_gguf(src: Path, dst: Path, progress: Progress | None = None) -> None:
    """Convert a llama GGUF file into an MLX model directory ``dst`` (created if missing).

    Everything that can be checked from the header (architecture, tensor types, tokenizer) is
    checked before any tensor is loaded. The caller owns atomicity: write into a temporary
    directory and move it into place (see ``mlxcli.engine.models``).
    """
    import mlx.core as mx

    report = progress or (lambda stage, done, total: None)
    src, dst = Path(src), Path(dst)
    report("read", 0, 1)
    header = read_gguf_header(src)
    config = llama_config(header)
    _check_tensor_types(header)
    plan = _plan_tensors(header, config)
    tokenizer_files = build_tokenizer_files(header.metadata, config["max_position_embeddings"])
    ids = generation_ids(header.metadata)
    if quantization := _quantization_config(plan):
        config["quantization"] = quantization
    config.update(ids)
    report("read", 1, 1)

    try:
        loaded = mx.load(str(src))
    except Exception as e:  # MLX raises RuntimeError/ValueError on malformed files
        raise ModelError(f"{src}: MLX could not read the GGUF tensors ({e})") from e

    weights: dict[str, Any] = {}
    n_heads, n_kv = config["num_attention_heads"], config["num_key_value_heads"]
    for done, (base, (target, info)) in enumerate(sorted(plan.items()), start=1):
        parts = [p for p in ("weight", "scales", "biases") if f"{base}.{p}" in loaded]
        if SUPPORTED_TENSOR_TYPES[info.ggml_type][2] is not None and parts != ["weight", "scales", "biases"]:
            raise ModelError(f"MLX did not return a quantized triplet for {base}")
        for part in parts:
            array = loaded.pop(f"{base}.{part}")
            if base.endswith(".attn_q"):
                array = unpermute_rows(array, n_heads)
            elif base.endswith(".attn_k"):
                array = unpermute_rows(array, n_kv)
            weights[f"{target}.{part}"] = array
        report("convert", done, len(plan))

    dst.mkdir(parents=True, exist_ok=True)
    report("write", 0, 1)
    mx.save_safetensors(str(dst / "model.safetensors"), weights, metadata={"format": "mlx"})
    del weights, loaded
    _write_json(dst / "config.json", config)
    _write_json(dst / "generation_config.json", ids)
    for name, content in tokenizer_files.items():
        _write_json(dst / name, content)
    report("write", 1, 1)
    report("check", 0, 1)
    verify_loadable(dst)
    report("check", 1, 1)


def _write_json(path: Path, content: Any) -> None:
    path.write_text(json.dumps(content, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")


def verify_loadable(model_dir: Path) -> None:
    """Build the model and tokenizer lazily so that a bad conversion fails now, not at serve time."""
    from mlx_lm.tokenizer_utils import load as load_tokenizer
    from mlx_lm.utils import load_model

    try:
        load_model(model_dir, lazy=True)
        load_tokenizer(model_dir)
    except Exception as e:
        raise ModelError(f"converted model in {model_dir} does not load: {e}") from e

"""The tokenizer files of a converted model, built from a GGUF's ``tokenizer.ggml.*`` metadata.

Only GPT-2 byte-level BPE (``tokenizer.ggml.model == "gpt2"``). The pre-tokenizer is rebuilt
from llama.cpp's own regex list for ``tokenizer.ggml.pre`` (one ``Split`` per regex, applied in
sequence like ``unicode_regex_split``, then byte-level mapping), so tokenization matches
llama.cpp's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mlxcli.core.errors import ModelError
from mlxcli.models.gguf.header import meta_value

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
    tokens: list[str] = meta_value(md, "tokenizer.ggml.tokens")
    merges: list[str] = meta_value(md, "tokenizer.ggml.merges")
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

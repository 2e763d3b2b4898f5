"""Tiny random embedding models laid out as sentence-transformers ships them (modules.json, 1_Pooling).

An encoder: a 2-layer BERT with MiniLM's WordPiece tokenizer. A decoder: a 2-layer Qwen3 saved as
sentence-transformers saves a base model (no ``model.`` prefix, no head), pooled on its last token.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import mlx.core as mx
from mlx.utils import tree_flatten

from tests.support.models import copy_tokenizer

BERT_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")


def write_sentence_transformers(dst: Path, pooling: str, width: int, *, normalize: bool = True, max_seq_length: int | None = None) -> None:
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
    ]
    if normalize:
        modules.append({"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"})
    (dst / "modules.json").write_text(json.dumps(modules))
    (dst / "1_Pooling").mkdir(exist_ok=True)
    modes = ("cls_token", "mean_tokens", "max_tokens", "mean_sqrt_len_tokens", "lasttoken")
    pooling_config = {"word_embedding_dimension": width, **{f"pooling_mode_{m}": m == pooling for m in modes}}
    (dst / "1_Pooling" / "config.json").write_text(json.dumps(pooling_config))
    if max_seq_length is not None:
        (dst / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": max_seq_length}))


def make_tiny_bert_dir(tokenizer_dir: Path, dst: Path, *, pooling: str = "mean_tokens", seed: int = 0,
                       max_seq_length: int | None = 48, model_type: str = "bert") -> Path:
    """A random BERT (or RoBERTa-style, positions counted from pad + 1; or MPNet) with a real WordPiece
    tokenizer, its weights named as Hugging Face's model of that type names them."""
    from mlxcli.engine.embeddings.bert import MPNET_NAMES, BertConfig, BertModel

    config = {
        "model_type": model_type, "architectures": ["BertModel"], "vocab_size": 30522, "hidden_size": 32,
        "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 64, "max_position_embeddings": 64,
        "hidden_act": "gelu", "type_vocab_size": 2, "layer_norm_eps": 1e-12, "pad_token_id": 0 if model_type == "bert" else 1,
    }
    if model_type == "mpnet":
        del config["type_vocab_size"]
        config["relative_attention_num_buckets"] = 32
    mx.random.seed(seed)
    model = BertModel(BertConfig.from_dict(config))
    if model_type == "mpnet":  # a bias big enough to matter: its random init is small
        model.encoder.relative_attention_bias.weight = mx.random.normal((32, 4))
    mx.eval(model.parameters())
    dst.mkdir(parents=True, exist_ok=True)
    # Saved as a task model saves it: under a prefix, beside a pooler that embeddings do not use.
    prefix = {"bert": "bert.", "mpnet": "mpnet."}.get(model_type, "roberta.")
    weights = {}
    for name, value in tree_flatten(model.parameters()):
        for theirs, ours in MPNET_NAMES if model_type == "mpnet" else ():
            name = name.replace(ours, theirs)
        weights[prefix + name] = value
    weights[prefix + "pooler.dense.weight"] = mx.zeros((32, 32))
    mx.save_safetensors(str(dst / "model.safetensors"), weights)
    (dst / "config.json").write_text(json.dumps(config))
    for name in BERT_TOKENIZER_FILES:
        shutil.copy(tokenizer_dir / name, dst / name)
    write_sentence_transformers(dst, pooling, 32, max_seq_length=max_seq_length)
    return dst


def make_tiny_decoder_dir(tokenizer_dir: Path, dst: Path, *, seed: int = 0) -> Path:
    """A random Qwen3 with last-token pooling, its weights named as sentence-transformers saves them."""
    from mlx_lm.models import qwen3

    config = {
        "model_type": "qwen3", "architectures": ["Qwen3ForCausalLM"], "hidden_size": 32, "num_hidden_layers": 2,
        "intermediate_size": 64, "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 8,
        "rms_norm_eps": 1e-6, "vocab_size": 49152, "rope_theta": 10000.0, "max_position_embeddings": 512,
        "tie_word_embeddings": False,
    }
    mx.random.seed(seed)
    model = qwen3.Model(qwen3.ModelArgs.from_dict(config))
    mx.eval(model.parameters())
    dst.mkdir(parents=True, exist_ok=True)
    weights = {k.removeprefix("model."): v for k, v in tree_flatten(model.parameters()) if not k.startswith("lm_head")}
    mx.save_safetensors(str(dst / "model.safetensors"), weights)
    (dst / "config.json").write_text(json.dumps(config))
    copy_tokenizer(tokenizer_dir, dst)
    write_sentence_transformers(dst, "lasttoken", 32)
    return dst

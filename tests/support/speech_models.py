"""A tiny random Whisper of the real architecture (mlx-whisper's layout), for fast engine and server tests.

Its tokenizer is a real byte-level BPE: SmolLM2's (pulled for every test run anyway), with Whisper's
special tokens after its vocabulary as Whisper numbers them (end of text, start of transcript, the
languages, the tasks, no-speech, no-timestamps, then 1501 timestamps). The weights are random: what it
writes is nonsense, but it goes through every step a real Whisper does (language detection, windows,
timestamps, fallbacks, word alignment).
"""

from __future__ import annotations

import json
from pathlib import Path

import mlx.core as mx
from mlx.utils import tree_flatten

from mlxcli.core.transcription import LANGUAGES

SPECIALS_BEFORE = ("<|endoftext|>", "<|startoftranscript|>")
SPECIALS_AFTER = ("<|translate|>", "<|transcribe|>", "<|startoflm|>", "<|startofprev|>", "<|nospeech|>", "<|notimestamps|>")


def whisper_tokenizer(smol_tokenizer: Path, multilingual: bool = True) -> dict:
    """SmolLM2's tokenizer.json with Whisper's special tokens (its own become plain vocabulary)."""
    data = json.loads(smol_tokenizer.read_text())
    vocab = data["model"]["vocab"]
    for added in data["added_tokens"]:  # free the names Whisper uses, keep the ids taken
        vocab[f"<|smol{added['id']}|>"] = vocab.pop(added["content"])
    languages = [f"<|{code}|>" for code in list(LANGUAGES)[:99]] if multilingual else ["<|en|>"]
    names = [*SPECIALS_BEFORE, *languages, *SPECIALS_AFTER]
    base = len(vocab)
    data["added_tokens"] = [{"id": base + i, "content": name, "single_word": False, "lstrip": False, "rstrip": False,
                             "normalized": False, "special": True} for i, name in enumerate(names)]
    data["post_processor"] = None
    return data


def make_tiny_whisper_dir(tokenizer_dir: Path, dst: Path, *, multilingual: bool = True, seed: int = 0,
                          state: int = 32, heads: int = 2, layers: int = 2, npz: bool = False) -> Path:
    """A random Whisper of ``layers`` encoder and decoder layers of width ``state``."""
    from mlxcli.engine.speech.whisper import Whisper, WhisperConfig

    tokenizer = whisper_tokenizer(tokenizer_dir / "tokenizer.json", multilingual)
    n_vocab = tokenizer["added_tokens"][-1]["id"] + 1 + 1501
    config = {"model_type": "whisper", "n_mels": 80, "n_audio_ctx": 1500, "n_audio_state": state, "n_audio_head": heads,
              "n_audio_layer": layers, "n_vocab": n_vocab, "n_text_ctx": 448, "n_text_state": state,
              "n_text_head": heads, "n_text_layer": layers}
    mx.random.seed(seed)
    model = Whisper(WhisperConfig.from_dict(config))
    model.decoder.positional_embedding = mx.random.normal((448, state)) * 0.02
    mx.eval(model.parameters())
    dst.mkdir(parents=True, exist_ok=True)
    (dst / "config.json").write_text(json.dumps(config))
    (dst / "tokenizer.json").write_text(json.dumps(tokenizer))
    weights = dict(tree_flatten(model.parameters()))
    if npz:
        mx.savez(str(dst / "weights.npz"), **weights)
    else:
        mx.save_safetensors(str(dst / "weights.safetensors"), weights)
    return dst

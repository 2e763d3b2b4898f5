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
    """SmolLM2's tokenizer.json laid out as Whisper's: its vocabulary padded to GPT-2's size (50257 tokens,
    one fewer for an English-only model, whose end-of-text is GPT-2's last), then Whisper's special
    tokens (SmolLM2's own become plain vocabulary)."""
    data = json.loads(smol_tokenizer.read_text())
    vocab = data["model"]["vocab"]
    for added in data["added_tokens"]:  # free the names Whisper uses, keep the ids taken
        vocab[f"<|smol{added['id']}|>"] = vocab.pop(added["content"])
    base = 50257 if multilingual else 50256
    vocab |= {f"<|filler{i}|>": i for i in range(len(vocab), base)}
    languages = [f"<|{code}|>" for code in list(LANGUAGES)[:99]]
    names = [*SPECIALS_BEFORE, *languages, *SPECIALS_AFTER]
    data["added_tokens"] = [{"id": base + i, "content": name, "single_word": False, "lstrip": False, "rstrip": False,
                             "normalized": False, "special": True} for i, name in enumerate(names)]
    data["post_processor"] = None
    return data


def make_tiny_whisper_dir(tokenizer_dir: Path, dst: Path, *, multilingual: bool = True, seed: int = 0,
                          state: int = 64, heads: int = 2, layers: int = 2, npz: bool = False) -> Path:
    """A random Whisper of ``layers`` encoder and decoder layers of width ``state``, whose decoder writes
    ``SCRIPT`` (see ``script``) whatever it hears."""
    from mlxcli.engine.speech.tokenizer import WhisperTokenizer
    from mlxcli.engine.speech.whisper import Whisper, WhisperConfig

    dst.mkdir(parents=True, exist_ok=True)
    (dst / "tokenizer.json").write_text(json.dumps(whisper_tokenizer(tokenizer_dir / "tokenizer.json", multilingual)))
    tokenizer = WhisperTokenizer(dst / "tokenizer.json")
    config = {"model_type": "whisper", "n_mels": 80, "n_audio_ctx": 1500, "n_audio_state": state, "n_audio_head": heads,
              "n_audio_layer": layers, "n_vocab": tokenizer.timestamp_begin + 1501, "n_text_ctx": 448,
              "n_text_state": state, "n_text_head": heads, "n_text_layer": layers}
    mx.random.seed(seed)
    model = Whisper(WhisperConfig.from_dict(config))
    script(model, tokenizer, multilingual)
    mx.eval(model.parameters())
    (dst / "config.json").write_text(json.dumps(config))
    weights = dict(tree_flatten(model.parameters()))
    if npz:
        mx.savez(str(dst / "weights.npz"), **weights)
    else:
        mx.save_safetensors(str(dst / "weights.safetensors"), weights)
    return dst


SCRIPT = " Hello world."  # what the tiny model says in a window read without a prompt, from 0.00 s to 1.00 s


def script(model, tokenizer, multilingual: bool) -> None:
    """Make the decoder a function of position alone: its layers add nothing (their output projections
    are zero; their attention scores stay random: word timings still have something to align), and
    each position's embedding points at the token the script wants next. Detection hears English;
    the window reads ``<|0.00|> Hello world. <|1.00|>``, then ends."""
    decoder = model.decoder
    for block in decoder.blocks:
        for linear in (block.attn.out, block.cross_attn.out, block.mlp2):
            linear.weight = mx.zeros_like(linear.weight)
            linear.bias = mx.zeros_like(linear.bias)
    begin = tokenizer.timestamp_begin
    targets = [begin, *tokenizer.encode(SCRIPT), begin + 50, tokenizer.eot]
    first = 2 if multilingual else 0  # the last position of the start (sot, language, task)
    by_position = {first + i: t for i, t in enumerate(targets)}
    if multilingual:
        by_position[0] = tokenizer.languages["en"]
    embedding = decoder.token_embedding.weight
    chosen = sorted(set(by_position.values()))
    embedding[mx.array(chosen)] = embedding[mx.array(chosen)] * 4  # stand out among 51865
    positions = mx.zeros_like(decoder.positional_embedding)
    for position, token in by_position.items():
        positions[position] = 20 * embedding[token] / mx.linalg.norm(embedding[token])
    for position in range(first + len(targets), positions.shape[0]):  # later: a prompt came first; end soon
        positions[position] = 20 * embedding[tokenizer.eot] / mx.linalg.norm(embedding[tokenizer.eot])
    decoder.positional_embedding = positions
    decoder.token_embedding.weight = embedding

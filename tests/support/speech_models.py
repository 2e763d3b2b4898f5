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


def write_ctranslate2(whisper_dir: Path, dst: Path, alignment_heads: list[list[int]]) -> Path:
    """An mlx-whisper directory laid out as faster-whisper's CTranslate2 conversion: ``model.bin`` (fused
    projections, convolutions as (out, in, width), float16), ``config.json``, ``tokenizer.json``."""
    import struct

    import numpy as np

    w = {k: np.array(v.astype(mx.float32)).astype(np.float16) for k, v in mx.load(str(whisper_dir / "weights.safetensors")).items()}
    config = json.loads((whisper_dir / "config.json").read_text())
    v: dict[str, np.ndarray] = {}
    zeros = lambda n: np.zeros(n, np.float16)  # noqa: E731  (Whisper's keys have no bias)

    def attention(src: str, dst_: str, cross: bool) -> None:
        q, k, val, out = (f"{src}.{n}" for n in ("query", "key", "value", "out"))
        if cross:
            v[f"{dst_}/linear_0/weight"], v[f"{dst_}/linear_0/bias"] = w[f"{q}.weight"], w[f"{q}.bias"]
            v[f"{dst_}/linear_1/weight"] = np.concatenate([w[f"{k}.weight"], w[f"{val}.weight"]])
            v[f"{dst_}/linear_1/bias"] = np.concatenate([zeros(len(w[f"{val}.bias"])), w[f"{val}.bias"]])
            v[f"{dst_}/linear_2/weight"], v[f"{dst_}/linear_2/bias"] = w[f"{out}.weight"], w[f"{out}.bias"]
        else:
            v[f"{dst_}/linear_0/weight"] = np.concatenate([w[f"{q}.weight"], w[f"{k}.weight"], w[f"{val}.weight"]])
            v[f"{dst_}/linear_0/bias"] = np.concatenate([w[f"{q}.bias"], zeros(len(w[f"{q}.bias"])), w[f"{val}.bias"]])
            v[f"{dst_}/linear_1/weight"], v[f"{dst_}/linear_1/bias"] = w[f"{out}.weight"], w[f"{out}.bias"]

    def norm(src: str, dst_: str) -> None:
        v[f"{dst_}/gamma"], v[f"{dst_}/beta"] = w[f"{src}.weight"], w[f"{src}.bias"]

    for side, layers in (("encoder", config["n_audio_layer"]), ("decoder", config["n_text_layer"])):
        for i in range(layers):
            src, dst_ = f"{side}.blocks.{i}", f"{side}/layer_{i}"
            attention(f"{src}.attn", f"{dst_}/self_attention", False)
            norm(f"{src}.attn_ln", f"{dst_}/self_attention/layer_norm")
            if side == "decoder":
                attention(f"{src}.cross_attn", f"{dst_}/attention", True)
                norm(f"{src}.cross_attn_ln", f"{dst_}/attention/layer_norm")
            norm(f"{src}.mlp_ln", f"{dst_}/ffn/layer_norm")
            for j in (0, 1):
                v[f"{dst_}/ffn/linear_{j}/weight"], v[f"{dst_}/ffn/linear_{j}/bias"] = w[f"{src}.mlp{j + 1}.weight"], w[f"{src}.mlp{j + 1}.bias"]
    for i in (1, 2):
        v[f"encoder/conv{i}/weight"], v[f"encoder/conv{i}/bias"] = w[f"encoder.conv{i}.weight"].transpose(0, 2, 1), w[f"encoder.conv{i}.bias"]
    norm("encoder.ln_post", "encoder/layer_norm")
    norm("decoder.ln", "decoder/layer_norm")
    v["encoder/position_encodings/encodings"] = np.zeros((config["n_audio_ctx"], config["n_audio_state"]), np.float16)
    v["decoder/embeddings/weight"] = w["decoder.token_embedding.weight"]
    v["decoder/position_encodings/encodings"] = w["decoder.positional_embedding"]
    v["encoder/num_heads"] = np.array(config["n_audio_head"], np.int16)
    v["decoder/num_heads"] = np.array(config["n_text_head"], np.int16)
    v["decoder/scale_embeddings"] = np.array(0, np.int8)

    codes = {np.dtype(np.float16): 4, np.dtype(np.int16): 2, np.dtype(np.int8): 1}

    def string(s: str) -> bytes:
        return struct.pack("<H", len(s) + 1) + s.encode() + b"\0"

    dst.mkdir(parents=True, exist_ok=True)
    with open(dst / "model.bin", "wb") as f:
        f.write(struct.pack("<I", 6) + string("WhisperSpec") + struct.pack("<II", 3, len(v)))
        for name, array in sorted(v.items()):
            f.write(string(name) + struct.pack("<B", array.ndim) + b"".join(struct.pack("<I", d) for d in array.shape))
            f.write(struct.pack("<BI", codes[array.dtype], array.nbytes) + array.tobytes())
        f.write(struct.pack("<I", 1) + string("decoder/projection/weight") + string("decoder/embeddings/weight"))
    (dst / "config.json").write_text(json.dumps({"alignment_heads": alignment_heads, "suppress_ids": [], "lang_ids": []}))
    (dst / "tokenizer.json").write_bytes((whisper_dir / "tokenizer.json").read_bytes())
    return dst

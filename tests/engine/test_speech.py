"""The speech kind's parts: the log-mel front end, the encoder in pieces, Whisper's decoding rules and
word alignment, and transcription jobs in the engine loop (cancelled, beside a chat model's budget)."""

from __future__ import annotations

import math

import mlx.core as mx
import mlx.nn as nn
import numpy as np
import pytest

from mlxcli.core.transcription import TranscriptionRequest
from mlxcli.engine.engine import EngineSettings, MlxEngine
from mlxcli.engine.kinds import served_model
from mlxcli.engine.speech import mel
from mlxcli.engine.speech.decoding import apply_timestamp_rules, segments
from mlxcli.engine.speech.timing import dtw, median_filter
from mlxcli.engine.speech.tokenizer import WhisperTokenizer
from mlxcli.engine.speech.whisper import EncoderPass, Whisper, WhisperConfig
from tests.support.http import wait_for
from tests.support.models import scripted_model
from tests.support.speech_models import SCRIPT, make_tiny_whisper_dir


@pytest.fixture(scope="module")
def whisper_dir(tokenizer_dir, tmp_path_factory):
    return make_tiny_whisper_dir(tokenizer_dir, tmp_path_factory.mktemp("whisper"))


@pytest.fixture(scope="module")
def tokenizer(whisper_dir):
    return WhisperTokenizer(whisper_dir / "tokenizer.json")


def test_log_mel_has_a_frame_per_10_ms_and_puts_a_tone_in_its_band():
    seconds, hz = 2.0, 1000.0
    audio = (0.5 * np.sin(2 * np.pi * hz * np.arange(int(seconds * 16000)) / 16000)).astype(np.float32)
    spectrum = mel.log_mel(audio, 80)
    assert spectrum.shape == (int(seconds * 100) + mel.N_FRAMES, 80) and spectrum.dtype == np.float32
    loudest = int(np.argmax(spectrum[50]))
    filters = mel.mel_filters(80)
    assert np.argmax(filters[loudest]) == round(hz / (16000 / mel.N_FFT))  # the filter peaking at 1 kHz
    assert spectrum.max() <= (spectrum.max() // 1) + 1 and spectrum.min() >= spectrum.max() - 2.0  # floored 8 below, scaled /4
    assert np.allclose(filters.sum(axis=1) > 0, True)  # every band has a filter


def test_the_encoder_in_pieces_is_the_encoder_at_once():
    config = WhisperConfig(80, 1500, 32, 4, 2, 51865, 448, 32, 4, 2)
    mx.random.seed(1)
    model = Whisper(config)
    frames = mx.random.normal((1, 3000, 80))
    pieces = EncoderPass(model.encoder, frames, rows=333)
    steps = 0
    while not pieces.step():
        steps += 1
    assert steps == 1 + 2 * (1 + math.ceil(1500 / 333))  # convolutions, then each layer's projections and rows

    x = nn.gelu(model.encoder.conv2(nn.gelu(model.encoder.conv1(frames)))) + model.encoder._positional_embedding
    for block in model.encoder.blocks:
        h = block.attn_ln(x)
        q, k, v = (t.reshape(1, 1500, 4, 8).transpose(0, 2, 1, 3) for t in (block.attn.query(h), block.attn.key(h), block.attn.value(h)))
        out = mx.fast.scaled_dot_product_attention(q, k, v, scale=8 ** -0.5).transpose(0, 2, 1, 3).reshape(1, 1500, 32)
        x = x + block.attn.out(out)
        x = x + block.mlp2(nn.gelu(block.mlp1(block.mlp_ln(x))))
    assert mx.allclose(pieces.features, model.encoder.ln_post(x), atol=1e-4).item()


def test_timestamp_rules(tokenizer):
    t = tokenizer
    begin = t.timestamp_begin
    logits = np.zeros(begin + 1501, np.float32)
    first = logits.copy()
    apply_timestamp_rules(first, [], t)
    allowed = np.flatnonzero(first > -np.inf)
    assert allowed.min() == begin and allowed.max() == begin + 50  # a timestamp first, within 1.00 s
    after_pair = logits.copy()
    apply_timestamp_rules(after_pair, [begin + 10, 300, begin + 20, begin + 20], t)
    assert np.all(after_pair[begin:] == -np.inf) and after_pair[300] > -np.inf  # a pair closed: text next
    open_pair = logits.copy()
    apply_timestamp_rules(open_pair, [begin + 10, 300], t)
    assert np.all(open_pair[: t.eot] == -np.inf) or np.all(open_pair[:begin] == -np.inf)
    assert np.all(open_pair[begin : begin + 10] == -np.inf)  # never back in time
    closing = logits.copy()
    apply_timestamp_rules(closing, [begin + 10, 300, begin + 25], t)
    assert np.all(closing[: t.eot] == -np.inf) and closing[begin + 25] > -np.inf and closing[begin + 24] == -np.inf


def test_segments_cut_at_consecutive_timestamps():
    begin = 1000
    tokens = [begin, 5, 6, begin + 50, begin + 50, 7, begin + 100]
    cut = segments(tokens, begin, seek=3000, size=3000, input_stride=2)
    assert [(s, e) for s, e, _ in cut.segments] == [(30.0, 31.0), (31.0, 32.0)]
    assert cut.single_timestamp_ending and cut.next_seek == 6000  # a window that ends on its own: next window
    unfinished = segments([begin, 5, begin + 50, begin + 50, 7], begin, seek=0, size=3000, input_stride=2)
    assert unfinished.next_seek == 100  # the last complete segment's end: the next window starts there
    plain = segments([5, 6], begin, seek=0, size=1200, input_stride=2)
    assert [(s, e) for s, e, _ in plain.segments] == [(0.0, 12.0)] and plain.next_seek == 1200


def test_dtw_follows_the_cheap_diagonal_and_the_median_filter_reflects_its_edges():
    cost = np.ones((4, 8), np.float32)
    for i in range(4):
        cost[i, 2 * i : 2 * i + 2] = 0
    rows, cols = dtw(cost)
    assert rows[0] == 0 and rows[-1] == 3 and cols[-1] == 7 and np.all(np.diff(rows) >= 0) and np.all(np.diff(cols) >= 0)
    assert all(cost[r, c] == 0 for r, c in zip(rows, cols) if c % 2 == 0 or r == rows[-1])
    x = np.array([[1, 9, 1, 1, 5, 5, 5]], np.float32)
    assert median_filter(x, 3).tolist() == [[9, 1, 1, 1, 5, 5, 5]]  # reflected: the first window is 9, 1, 9


def test_a_transcription_can_be_cancelled_and_leaves_the_chat_model_loaded(tokenizer_dir, whisper_dir):
    settings = EngineSettings(temperature=0.0, max_loaded_models=1)
    chat = scripted_model(tokenizer_dir, lambda prompt: "fine")
    engine = MlxEngine([chat, served_model("speech", whisper_dir, settings)], settings).start()
    try:
        audio = (0.1 * np.sin(np.arange(16000 * 95) / 10)).astype(np.float32)  # four windows
        job = engine.work("transcription", TranscriptionRequest(audio=audio))
        wait_for(lambda: engine.stats()["active_requests"] == 1, timeout=60)
        job.cancel()
        assert wait_for(lambda: engine.stats()["active_requests"] == 0, timeout=60)
        short = engine.work("transcription", TranscriptionRequest(audio=audio[:32000], words=True))
        result = short.result(timeout=300)
        assert result.text.strip() == SCRIPT.strip() and result.seconds > 0 and result.duration == pytest.approx(2.0)
        assert {m.name for m in engine.models() if m.state == "loaded"} == {"scripted", "speech"}  # a budget per task
        assert "image_features" not in engine.stats()  # Whisper's encoder is not a vision model's kept features
    finally:
        engine.stop(grace=0)


def test_a_quantized_whisper_runs_dequantized_on_the_cpu(tokenizer_dir, whisper_dir, tmp_path):
    """mlx-community's quantized conversions: their scales load, and the fast path runs them as float32."""
    import json
    import shutil

    from mlx.utils import tree_flatten

    from mlxcli.engine.speech import model as speech

    quantized = tmp_path / "q8"
    shutil.copytree(whisper_dir, quantized)
    config = json.loads((quantized / "config.json").read_text())
    dims, tokenizer = speech.setup(quantized, config)
    model = speech.load("q", whisper_dir, config, dims, tokenizer).model
    nn.quantize(model, group_size=32, bits=8, class_predicate=lambda p, m: isinstance(m, (nn.Linear, nn.Embedding)))
    mx.save_safetensors(str(quantized / "weights.safetensors"), dict(tree_flatten(model.parameters())))
    (quantized / "config.json").write_text(json.dumps(config | {"quantization": {"group_size": 32, "bits": 8}}))
    settings = EngineSettings()
    engine = MlxEngine([served_model("q8", quantized, settings)], settings).start()
    try:
        assert engine.models()[0].dtype == "float32 (from 8-bit)"
        audio = (0.1 * np.sin(np.arange(32000) / 10)).astype(np.float32)
        assert engine.work("transcription", TranscriptionRequest(audio=audio)).result(timeout=300).text.strip() == SCRIPT.strip()
    finally:
        engine.stop(grace=0)

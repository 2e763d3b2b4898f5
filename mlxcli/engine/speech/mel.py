"""Whisper's log-mel front end in NumPy (on the caller's thread, not the engine's).

As OpenAI's Whisper computes it: a periodic Hann window of 400 samples every 160 (25 ms every 10 ms at
16 kHz), reflect-padded; the power spectrum through Slaney-style mel filters (librosa's, computed here
rather than shipped); log10, floored 8 below the loudest frame of the whole clip, scaled to about
[-1, 1]. The clip gets 30 s of silence appended first (the last window's padding).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from mlxcli.core.transcription import SAMPLE_RATE

N_FFT = 400
HOP = 160
CHUNK_SECONDS = 30
N_SAMPLES = CHUNK_SECONDS * SAMPLE_RATE  # one window
N_FRAMES = N_SAMPLES // HOP  # 3000 frames a window
FRAMES_PER_SECOND = SAMPLE_RATE // HOP  # 100
_BLOCK = 4 * N_FRAMES  # frames transformed at once: bounds the memory of a long clip's FFT


def _hz_to_mel(hz: np.ndarray) -> np.ndarray:
    """Slaney's scale: linear below 1 kHz, logarithmic above."""
    hz = np.asarray(hz, dtype=np.float64)
    mel = hz / (200.0 / 3)
    log = hz >= 1000.0
    return np.where(log, 15.0 + np.log(np.maximum(hz, 1e-10) / 1000.0) / (np.log(6.4) / 27.0), mel)


def _mel_to_hz(mel: np.ndarray) -> np.ndarray:
    hz = (200.0 / 3) * mel
    log = mel >= 15.0
    return np.where(log, 1000.0 * np.exp((np.log(6.4) / 27.0) * (mel - 15.0)), hz)


@lru_cache(maxsize=4)
def mel_filters(n_mels: int) -> np.ndarray:
    """``(n_mels, N_FFT // 2 + 1)``: librosa.filters.mel(sr=16000, n_fft=400, n_mels=n_mels)."""
    bins = np.linspace(0, SAMPLE_RATE / 2, N_FFT // 2 + 1)
    edges = _mel_to_hz(np.linspace(_hz_to_mel(0.0), _hz_to_mel(SAMPLE_RATE / 2), n_mels + 2))
    widths = np.diff(edges)
    ramps = edges[:, None] - bins[None, :]
    lower = -ramps[:-2] / widths[:-1, None]
    upper = ramps[2:] / widths[1:, None]
    weights = np.maximum(0, np.minimum(lower, upper))
    weights *= (2.0 / (edges[2:] - edges[:-2]))[:, None]  # each filter's area the same
    return weights.astype(np.float32)


def log_mel(audio: np.ndarray, n_mels: int) -> np.ndarray:
    """``(frames, n_mels)`` float32 for ``audio`` (mono float32 at 16 kHz) followed by 30 s of silence:
    ``len(audio) // HOP`` frames of the clip, then ``N_FRAMES`` of the padding."""
    x = np.concatenate([np.asarray(audio, dtype=np.float32), np.zeros(N_SAMPLES, np.float32)])
    x = np.pad(x, N_FFT // 2, mode="reflect")
    frames = (len(x) - N_FFT) // HOP  # the last frame is dropped, as Whisper does
    window = np.hanning(N_FFT + 1)[:-1].astype(np.float32)
    filters = mel_filters(n_mels).T
    out = np.empty((frames, n_mels), np.float32)
    for start in range(0, frames, _BLOCK):
        count = min(_BLOCK, frames - start)
        block = np.lib.stride_tricks.sliding_window_view(x[start * HOP : (start + count - 1) * HOP + N_FFT], N_FFT)[::HOP]
        spectrum = np.fft.rfft(block * window, axis=-1)
        power = (spectrum.real**2 + spectrum.imag**2).astype(np.float32)
        out[start : start + count] = np.log10(np.maximum(power @ filters, 1e-10))
    np.maximum(out, out.max() - 8.0, out=out)
    return (out + 4.0) / 4.0


def window(mel: np.ndarray, start: int, size: int) -> np.ndarray:
    """``size`` frames of ``mel`` from ``start``, zero-padded to a full window (``N_FRAMES``)."""
    piece = mel[start : start + min(size, N_FRAMES)]
    if len(piece) < N_FRAMES:
        piece = np.concatenate([piece, np.zeros((N_FRAMES - len(piece), mel.shape[1]), np.float32)])
    return piece

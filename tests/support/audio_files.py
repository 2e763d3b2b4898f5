"""Audio files for the transcription tests: speech from espeak-ng (scripts/_venv.sh installs it), a tone
where it is missing, and the other upload formats encoded from a WAV with PyAV."""

from __future__ import annotations

import shutil
import subprocess
import wave
from pathlib import Path

import numpy as np

# container, codec, sample rate of each format OpenAI accepts that the tests send (the lossy ones at 96 kbit/s,
# as a phone or a browser records: their defaults at low rates mangle espeak's voice)
ENCODINGS = {
    "flac": ("flac", "flac", 16000),
    "mp3": ("mp3", "libmp3lame", 22050),
    "ogg": ("ogg", "libopus", 48000),
    "m4a": ("ipod", "aac", 22050),
    "webm": ("webm", "libopus", 48000),
}
BIT_RATE = 96_000


def espeak(text: str, path: Path, voice: str = "en-us", speed: int = 150) -> Path:
    """``text`` spoken by espeak-ng (``speed`` words a minute) into a WAV (22.05 kHz mono)."""
    if shutil.which("espeak-ng") is None:
        import pytest

        pytest.fail("espeak-ng is not installed: scripts/test installs Debian's when run as root with apt")
    subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-w", str(path), text], check=True, capture_output=True)
    return path


def tone(path: Path, seconds: float, rate: int = 22050, hz: float = 440.0) -> Path:
    """A WAV of a quiet sine tone (16-bit mono)."""
    t = np.arange(int(seconds * rate)) / rate
    samples = (0.2 * np.sin(2 * np.pi * hz * t) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples.tobytes())
    return path


def encode(wav: Path, fmt: str) -> Path:
    """``wav`` re-encoded as ``fmt`` (a key of ENCODINGS) beside it."""
    import av

    container_format, codec, rate = ENCODINGS[fmt]
    out = wav.with_suffix(f".{fmt}")
    with av.open(str(wav)) as src, av.open(str(out), "w", format=container_format) as dst:
        stream = dst.add_stream(codec, rate=rate, layout="mono")
        if codec != "flac":
            stream.bit_rate = BIT_RATE
        resampler = av.AudioResampler(format=stream.codec_context.codec.audio_formats[0].name, layout="mono", rate=rate)
        for frame in src.decode(audio=0):
            for piece in resampler.resample(frame):
                for packet in stream.encode(piece):
                    dst.mux(packet)
        for piece in resampler.resample(None):
            for packet in stream.encode(piece):
                dst.mux(packet)
        for packet in stream.encode(None):
            dst.mux(packet)
    return out

"""Audio files → the samples speech models read: mono float32 at 16 kHz, decoded with PyAV (FFmpeg's
libraries inside the wheel: no system ffmpeg), in the formats OpenAI's transcription API takes.

Uploads are untrusted: read from memory, only the demuxers of the accepted formats are tried (FFmpeg's
``format_whitelist``: no playlist or concat demuxer that would open other files or URLs) and no protocol
may be opened from inside one (``protocol_whitelist``); the first audio stream only; and decoding stops as
soon as the audio passes ``max_seconds`` (a small file can hold hours of silence). Every failure is an
``InvalidRequest`` naming ``file``.
PyAV is the ``audio`` extra: ``pip install 'mlxcli[audio]'``.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from mlxcli.core.errors import InvalidRequest
from mlxcli.core.transcription import SAMPLE_RATE

FORMATS = ("flac", "m4a", "mp3", "mp4", "mpeg", "mpga", "oga", "ogg", "wav", "webm")
# FFmpeg's demuxers of those formats ("mov" reads mp4 and m4a, "matroska" webm, "mp3" mpga, "ogg" oga)
DEMUXERS = "flac,mp3,mov,mpeg,ogg,wav,matroska,aac"


def decode_audio(source: bytes | Path, *, max_seconds: float, param: str = "file") -> np.ndarray:
    """The audio of ``source`` (an upload's bytes, or a local file) as mono float32 samples at 16 kHz."""
    try:
        import av
    except ImportError:
        raise InvalidRequest("Transcription needs PyAV on the server: pip install 'mlxcli[audio]'.", param=param) from None
    local = not isinstance(source, bytes)  # a file the CLI was given: FFmpeg opens it itself
    options = {"format_whitelist": DEMUXERS, "protocol_whitelist": "file" if local else "none"}
    try:
        container = av.open(str(source) if local else io.BytesIO(source), mode="r", container_options=options)
    except av.error.FFmpegError as exc:
        raise InvalidRequest(f"'{param}' is not audio in an accepted format ({_reason(exc)}). "
                             f"Supported formats: {', '.join(FORMATS)}.", param=param, code="invalid_file_format") from None
    except OSError as exc:
        raise InvalidRequest(f"cannot read '{param}': {exc.strerror or exc}", param=param) from None
    with container:
        if not container.streams.audio:
            raise InvalidRequest(f"'{param}' has no audio stream.", param=param, code="invalid_file")
        return _samples(av, container, container.streams.audio[0], max_seconds, param)


def _samples(av, container, stream, max_seconds: float, param: str) -> np.ndarray:
    limit = int(max_seconds * SAMPLE_RATE)
    resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
    chunks: list[np.ndarray] = []
    total = 0
    try:
        for frame in container.decode(stream):
            for out in resampler.resample(frame):
                chunks.append(out.to_ndarray().reshape(-1))
                total += chunks[-1].size
            if total > limit:
                raise InvalidRequest(f"'{param}' is longer than this server's limit of {max_seconds:g} seconds of audio "
                                     "(--max-audio-seconds).", param=param, code="audio_too_long")
        chunks += [out.to_ndarray().reshape(-1) for out in resampler.resample(None)]
    except av.error.FFmpegError as exc:
        raise InvalidRequest(f"'{param}' could not be decoded ({_reason(exc)}).", param=param, code="invalid_file") from None
    audio = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
    if audio.size == 0:
        raise InvalidRequest(f"'{param}' holds no audio.", param=param, code="invalid_file")
    if audio.size > limit:
        raise _too_long(param, max_seconds)
    return np.clip(audio, -1.0, 1.0).astype(np.float32, copy=False)


def _too_long(param: str, max_seconds: float) -> InvalidRequest:
    return InvalidRequest(f"'{param}' is longer than this server's limit of {max_seconds:g} seconds of audio "
                          "(--max-audio-seconds).", param=param, code="audio_too_long")


def _reason(exc: Exception) -> str:
    return getattr(exc, "strerror", None) or str(exc)

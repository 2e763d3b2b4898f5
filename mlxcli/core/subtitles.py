"""A transcription as subtitles: SubRip (``.srt``) and WebVTT (``.vtt``), one cue per segment, as
OpenAI's API writes them (and ``mlxcli transcribe --format srt|vtt``)."""

from __future__ import annotations

from mlxcli.core.transcription import Transcription


def _timestamp(seconds: float, decimal: str) -> str:
    ms = max(0, round(seconds * 1000))
    hours, ms = divmod(ms, 3_600_000)
    minutes, ms = divmod(ms, 60_000)
    secs, ms = divmod(ms, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{decimal}{ms:03d}"


def _cue_text(text: str) -> str:
    return text.strip().replace("-->", "->")  # the arrow would end the cue's timing line


def srt(transcription: Transcription) -> str:
    cues = [f"{i}\n{_timestamp(s.start, ',')} --> {_timestamp(s.end, ',')}\n{_cue_text(s.text)}\n"
            for i, s in enumerate(transcription.segments, start=1)]
    return "\n".join(cues) + ("\n" if cues else "")


def vtt(transcription: Transcription) -> str:
    cues = [f"{_timestamp(s.start, '.')} --> {_timestamp(s.end, '.')}\n{_cue_text(s.text)}\n" for s in transcription.segments]
    return "WEBVTT\n\n" + "\n".join(cues) + ("\n" if cues else "")

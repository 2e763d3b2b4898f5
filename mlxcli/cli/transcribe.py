"""``mlxcli transcribe FILE``: the words of an audio file on stdout, for shell scripts.

In this process (a speech model: whisper-base unless ``--model``), or through a running server
(``--url``: its ``/v1/audio/transcriptions``). ``--format``: text (the default), srt or vtt subtitles,
or json (segments with word timings).
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from mlxcli.cli import app
from mlxcli.cli.common import FastPathOption, exit_process, fail, start_engine

FORMATS = ("text", "srt", "vtt", "json")
DEFAULT_SPEECH_MODEL = "whisper-base"
MAX_SECONDS = 4 * 3600  # a local file: as long as memory allows, within reason (1 h ≈ 350 MB decoded)


@app.command()
def transcribe(
    file: Annotated[Path, typer.Argument(help="An audio (or video) file: flac, m4a, mp3, mp4, ogg, wav, webm, ...")],
    model: Annotated[Optional[str], typer.Option("--model", "-m", help=f"Speech model (default {DEFAULT_SPEECH_MODEL}; "
                                                  "with --url: the server's first one).")] = None,
    fmt: Annotated[str, typer.Option("--format", "-f", help="text, srt, vtt or json (segments and words).")] = "text",
    language: Annotated[Optional[str], typer.Option("--language", "-l", help="The language spoken (ISO-639-1, e.g. en); "
                                                     "default: detected.")] = None,
    translate: Annotated[bool, typer.Option("--translate", help="Write English, whatever the language spoken.")] = False,
    prompt: Annotated[Optional[str], typer.Option("--prompt", help="Text the audio follows: names, spellings, style.")] = None,
    url: Annotated[Optional[str], typer.Option("--url", envvar="MLXCLI_URL", help="A running server to ask instead.")] = None,
    api_key: Annotated[Optional[str], typer.Option("--api-key", envvar="MLXCLI_API_KEY", help="With --url: its API key.")] = None,
    fast_path: bool = FastPathOption,
) -> None:
    """Transcribe (or translate) an audio file; the text on stdout."""
    if fmt not in FORMATS:
        fail(f"--format must be one of {', '.join(FORMATS)}", 2)
    if not file.is_file():
        fail(f"{file}: no such file", 2)
    if url is not None:
        typer.echo(_remote(url, api_key, file, model, fmt, language, translate, prompt), nl=False)
        raise typer.Exit(0)
    from mlxcli.audio import decode_audio
    from mlxcli.core.errors import MlxcliError
    from mlxcli.core.transcription import TranscriptionRequest

    try:
        audio = decode_audio(file, max_seconds=MAX_SECONDS, param=str(file))
    except MlxcliError as exc:
        fail(exc.message, 2)
    engine = start_engine(model or DEFAULT_SPEECH_MODEL, fast_path=fast_path)
    code = 0
    try:
        request = TranscriptionRequest(audio=audio, task="translate" if translate else "transcribe", language=language,
                                       prompt=prompt, words=fmt == "json")
        result = engine.work("transcription", request).result()
        sys.stdout.write(_local_output(result, fmt))
        sys.stdout.flush()
    except MlxcliError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        code = 1
    finally:
        engine.stop(grace=0)
    exit_process(code)


def _local_output(result, fmt: str) -> str:
    from mlxcli.core import subtitles

    if fmt == "text":
        return result.text.strip() + "\n"
    if fmt in ("srt", "vtt"):
        return getattr(subtitles, fmt)(result)
    body = {"text": result.text.strip(), "language": result.language, "duration": round(result.duration, 2),
            "segments": [dataclasses.asdict(s) | {"words": [dataclasses.asdict(w) for w in s.words]} for s in result.segments]}
    for segment in body["segments"]:
        segment.pop("logprobs", None)
    return json.dumps(body, ensure_ascii=False, indent=1) + "\n"


def _remote(url: str, api_key: str | None, file: Path, model: str | None, fmt: str, language: str | None,
            translate: bool, prompt: str | None) -> str:
    from mlxcli.client import Client, ServerError

    fields: dict[str, str | list[str]] = {"response_format": "verbose_json" if fmt == "json" else fmt}
    if fmt == "json":
        fields["timestamp_granularities[]"] = ["segment", "word"]
    for name, value in (("model", model), ("language", language), ("prompt", prompt)):
        if value:
            fields[name] = value
    path = "/v1/audio/translations" if translate else "/v1/audio/transcriptions"
    try:
        with Client(url, api_key=api_key) as client:
            body = client.transcribe(path, file.read_bytes(), file.name, fields)
    except ServerError as exc:
        fail(exc.message)
    except OSError as exc:
        fail(f"cannot read {file}: {exc.strerror or exc}", 2)
    text = body.decode("utf-8", errors="replace")
    return text if fmt != "json" else json.dumps(json.loads(text), ensure_ascii=False, indent=1) + "\n"

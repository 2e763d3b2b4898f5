"""OpenAI Audio: ``POST /v1/audio/transcriptions`` and ``/v1/audio/translations`` (and Azure's routes, through
``api_routes`` and azure.py), as the OpenAI SDKs send them: multipart/form-data with the audio as ``file``.

Fields: ``model``, ``language`` (ISO-639-1: the language spoken, else detected), ``prompt``, ``temperature``
(0: greedy, warmer on retries), ``response_format`` (json, text, srt, vtt, verbose_json),
``timestamp_granularities[]`` (segment, word: verbose_json only), ``include[]`` (logprobs: json only) and
``stream`` (``transcript.text.delta`` events, one per segment as soon as it is final, then
``transcript.text.done``). A translation writes English whatever the language spoken.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Iterator

import falcon

from mlxcli.audio import decode_audio
from mlxcli.core import subtitles
from mlxcli.core.errors import ClientClosedRequest, InvalidRequest, MlxcliError
from mlxcli.core.transcription import LANGUAGES, Segment, Transcription, TranscriptionJob, TranscriptionRequest
from mlxcli.server import disconnect
from mlxcli.server.context import ServerContext
from mlxcli.server.framing import NO_BUFFERING, sse_data
from mlxcli.server.http import send_json
from mlxcli.server.multipart import Form, read_form
from mlxcli.server.providers.base import Provider

RESPONSE_FORMATS = ("json", "text", "srt", "vtt", "verbose_json")
GRANULARITIES = ("segment", "word")
INCLUDES = ("logprobs",)
TEXT_TYPES = {"text": "text/plain; charset=utf-8", "srt": "application/x-subrip; charset=utf-8", "vtt": "text/vtt; charset=utf-8"}
MAX_PROMPT = 4096  # characters; the model reads the last 223 tokens of it


@dataclass
class AudioCall:
    request: TranscriptionRequest
    response_format: str
    granularities: tuple[str, ...]
    stream: bool

    def body(self, result: Transcription) -> dict[str, Any] | str:
        """The answer in ``response_format``: a JSON object, or the text of a text format."""
        if self.response_format == "text":
            return result.text.strip() + "\n"
        if self.response_format in ("srt", "vtt"):
            return getattr(subtitles, self.response_format)(result)
        usage = {"type": "duration", "seconds": math.ceil(result.duration)}
        if self.response_format == "json":
            return {"text": result.text.strip(), **self._logprobs(result.segments), "usage": usage}
        body: dict[str, Any] = {"task": self.request.task, "language": LANGUAGES.get(result.language, result.language),
                                "duration": round(result.duration, 2), "text": result.text.strip()}
        if "segment" in self.granularities or not self.granularities:
            body["segments"] = [_segment(s) for s in result.segments]
        if "word" in self.granularities:
            body["words"] = [{"word": w.word.strip(), "start": w.start, "end": w.end} for w in result.words]
        return body | {"usage": usage}

    def delta(self, segment: Segment, first: bool) -> bytes:
        text = segment.text.lstrip() if first else segment.text
        return sse_data({"type": "transcript.text.delta", "delta": text, **self._logprobs([segment])})

    def done(self, result: Transcription) -> bytes:
        return sse_data({"type": "transcript.text.done", "text": result.text.strip(), **self._logprobs(result.segments)})

    def _logprobs(self, segments) -> dict[str, Any]:
        if not self.request.logprobs:
            return {}
        return {"logprobs": [{"token": lp.token, "bytes": list(lp.bytes), "logprob": lp.logprob}
                             for s in segments for lp in s.logprobs]}


def _segment(s: Segment) -> dict[str, Any]:
    return {"id": s.id, "seek": s.seek, "start": s.start, "end": s.end, "text": s.text, "tokens": list(s.tokens),
            "temperature": s.temperature, "avg_logprob": s.avg_logprob, "compression_ratio": s.compression_ratio,
            "no_speech_prob": s.no_speech_prob}


def parse(form: Form, task: str, max_seconds: float) -> AudioCall:
    """The call of a transcription (``task`` transcribe) or translation form; the audio decoded.
    Raises InvalidRequest naming the field."""
    response_format = _choice(form, "response_format", RESPONSE_FORMATS) or "json"
    granularities = tuple(dict.fromkeys(_choices(form, "timestamp_granularities", GRANULARITIES)))
    if granularities and response_format != "verbose_json":
        raise InvalidRequest("'timestamp_granularities' needs response_format 'verbose_json'.", param="timestamp_granularities")
    includes = _choices(form, "include", INCLUDES)
    if includes and (response_format != "json" or task != "transcribe"):
        raise InvalidRequest("'include' (logprobs) needs a transcription with response_format 'json'.", param="include")
    stream = _flag(form, "stream")
    if stream and response_format not in ("json", "text"):
        raise InvalidRequest("A streamed answer is text deltas: use response_format 'json' or 'text'.", param="stream")
    if form.text("chunking_strategy") not in (None, "", "auto"):
        raise InvalidRequest("'chunking_strategy' may only be 'auto' here: audio is read in 30-second windows.",
                             param="chunking_strategy")
    temperature = _number(form, "temperature", 0.0, 1.0)
    prompt = form.text("prompt")
    if prompt is not None and len(prompt) > MAX_PROMPT:
        raise InvalidRequest(f"'prompt' is longer than {MAX_PROMPT} characters.", param="prompt")
    if "file" not in form.files:
        raise InvalidRequest("Missing required parameter: 'file'.", param="file", code="missing_required_parameter")
    audio = decode_audio(form.files["file"][1], max_seconds=max_seconds)
    request = TranscriptionRequest(
        audio=audio,
        model=form.text("model") or None,
        task=task,  # type: ignore[arg-type]
        language=(form.text("language") or "").strip().lower() or None,
        prompt=prompt,
        temperature=temperature,
        words="word" in granularities,
        logprobs=bool(includes),
    )
    return AudioCall(request, response_format, granularities, stream)


def _choice(form: Form, name: str, choices: tuple[str, ...]) -> str | None:
    value = form.text(name)
    if value is not None and value not in choices:
        raise InvalidRequest(f"Invalid value for '{name}': expected one of {', '.join(map(repr, choices))}, got {value!r}.",
                             param=name, code="invalid_value")
    return value


def _choices(form: Form, name: str, choices: tuple[str, ...]) -> list[str]:
    """A repeated field (``name[]``, as the SDKs send arrays, or plain ``name``)."""
    values = form.fields.get(f"{name}[]", []) + form.fields.get(name, [])
    for value in values:
        if value not in choices:
            raise InvalidRequest(f"Invalid value for '{name}': expected {' or '.join(map(repr, choices))}, got {value!r}.",
                                 param=name, code="invalid_value")
    return values


def _flag(form: Form, name: str) -> bool:
    value = (form.text(name) or "false").strip().lower()
    if value not in ("true", "false", "1", "0"):
        raise InvalidRequest(f"Invalid value for '{name}': expected true or false, got {value!r}.", param=name)
    return value in ("true", "1")


def _number(form: Form, name: str, lo: float, hi: float) -> float:
    raw = form.text(name)
    if raw is None or not raw.strip():
        return lo
    try:
        value = float(raw)
    except ValueError:
        raise InvalidRequest(f"Invalid type for '{name}': expected a number, got {raw!r}.", param=name, code="invalid_type") from None
    if not lo <= value <= hi:  # NaN fails too
        raise InvalidRequest(f"Invalid value for '{name}': {raw} is not between {lo:g} and {hi:g}.", param=name, code="invalid_value")
    return value


class Transcribe:
    """POST a transcription (``task`` transcribe) or translation; a model named by the route (an Azure
    deployment) wins over the form's."""

    def __init__(self, ctx: ServerContext, provider: Provider, task: str):
        self.ctx = ctx
        self.provider = provider
        self.task = task

    def on_post(self, req: falcon.Request, resp: falcon.Response, deployment: str | None = None) -> None:
        req.context.api = self.provider.name  # for the access log
        settings = self.ctx.settings
        call = parse(read_form(req, settings.max_upload_bytes, ("file",)), self.task, settings.max_audio_seconds)
        call.request.request_id = req.context.request_id
        call.request.model = deployment or call.request.model
        job = self.ctx.transcribe(call.request, api=self.provider.name)
        if call.stream:
            resp.content_type = "text/event-stream"
            for name, value in NO_BUFFERING:
                resp.set_header(name, value)
            resp.stream = TranscriptStream(job, call, self.provider, settings.keepalive_seconds)
            return
        body = call.body(disconnect.transcription(job))
        if isinstance(body, str):
            resp.content_type = TEXT_TYPES[call.response_format]
            resp.text = body
        else:
            send_json(resp, body)


class TranscriptStream:
    """The SSE body of a streamed transcription: a delta per segment, then the done event (or an error
    event); keep-alive comments meanwhile. Closing it (the client left) cancels the transcription."""

    def __init__(self, job: TranscriptionJob, call: AudioCall, provider: Provider, keepalive: float):
        self.job, self.call, self.provider, self.keepalive = job, call, provider, keepalive
        self._disconnected = disconnect.current.get()
        self._frames = self._encode()

    def _encode(self) -> Iterator[bytes]:
        first, quiet_since = True, time.monotonic()
        try:
            for segment in self.job.segments(timeout=disconnect.POLL_SECONDS):
                if self._disconnected():
                    raise ClientClosedRequest("The client closed the connection.")
                if segment is not None:
                    yield self.call.delta(segment, first)
                    first, quiet_since = False, time.monotonic()
                elif time.monotonic() - quiet_since >= self.keepalive:
                    quiet_since = time.monotonic()
                    yield b": keep-alive\n\n"
            result = self.job.result(timeout=0)
            assert result is not None
            yield self.call.done(result)
        except ClientClosedRequest:
            return
        except MlxcliError as err:
            yield sse_data(self.provider.error_body(err))
        finally:
            self.job.cancel()

    def __iter__(self) -> Iterator[bytes]:
        return self._frames

    def close(self) -> None:
        self._frames.close()
        self.job.cancel()

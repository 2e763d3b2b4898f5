"""Transcription requests on the engine thread, a bounded slice at a time between decode steps.

A request's audio becomes its log-mel spectrogram when it is submitted (the caller's thread). The
engine then steps its ``Transcriber`` (a ``Worker``) once per pass of its loop, and each step runs
pieces of the request's transcription for about ``SLICE_SECONDS``: a piece is a part of a window's
encoding (a layer's projections, or 128 of its rows), a layer's cross-attention keys, one decoder token,
or the window's word timings. So a chat stream waits about one slice per token, and a transcription
sent beside chat streams still moves at every pass.

The transcription itself is OpenAI Whisper's long-form loop, written as a generator that yields after
each piece (``transcribe``): 30-s windows from ``seek``, each decoded with the text before it as its
prompt, retried warmer when its text looks wrong, skipped when it is silence, cut into segments at its
timestamps; the next window starts where the last complete segment ended.
"""

from __future__ import annotations

import queue
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Generator, Iterator

import mlx.core as mx
import numpy as np

from mlxcli.core.errors import EngineFailure, MlxcliError
from mlxcli.core.transcription import Segment, TokenLogprob, Transcription, TranscriptionRequest
from mlxcli.engine.job import WorkHandle, WorkJob
from mlxcli.engine.speech import mel as melspec
from mlxcli.engine.speech.decoding import Decoded, WindowDecoder, initial_tokens, segments
from mlxcli.engine.speech.timing import find_alignment, word_timestamps
from mlxcli.engine.speech.whisper import EncoderPass, Whisper
from mlxcli.engine.worker import Worker

TEMPERATURE_STEP = 0.2  # each retry of a window decodes this much warmer, up to 1.0
# What one engine pass gives a transcription: pieces (each a few to a few tens of milliseconds) until this
# much time is spent. About one decode step of a small chat batch on a CPU: chat streams keep their pace.
SLICE_SECONDS = 0.03
_DONE = object()  # the end of a job's segments


@dataclass(eq=False)
class TranscribeJob(WorkJob):
    mel: np.ndarray | None = None  # (frames, n_mels): the clip's, then 30 s of padding
    frames: int = 0  # the clip's frames (the padding's not counted)
    prompt: list[int] = field(default_factory=list)  # the request's prompt, as tokens
    segments: queue.SimpleQueue = field(default_factory=queue.SimpleQueue)  # each final Segment, then _DONE
    steps: Generator[None, None, Transcription] | None = None  # made at its first step (engine thread)
    started: float | None = None

    @property
    def temperatures(self) -> tuple[float, ...]:
        t = self.request.temperature
        return tuple(float(x) for x in np.arange(t, 1.0 + 1e-6, TEMPERATURE_STEP)) if t < 1.0 else (t,)

    def emit(self, outcome: Any) -> None:
        super().emit(outcome)
        self.segments.put(_DONE)


class TranscriptionHandle(WorkHandle):
    """The caller's side of a ``TranscribeJob`` (``mlxcli.core.transcription.TranscriptionJob``)."""

    def __init__(self, job: TranscribeJob, alive: Callable[[], bool], cancel: Callable[[WorkJob], None]):
        super().__init__(job, alive, cancel)
        self.duration = job.request.duration

    def segments(self, timeout: float) -> Iterator[Segment | None]:
        job: TranscribeJob = self.job  # type: ignore[assignment]
        while True:
            try:
                item = job.segments.get(timeout=timeout)
            except queue.Empty:
                if not self._alive():
                    raise EngineFailure("the engine stopped while this request was running") from None
                yield None
                continue
            if item is _DONE:
                if isinstance(job.output, MlxcliError):
                    raise job.output
                return
            yield item


class Transcriber(Worker):
    """One piece of a transcription per pass."""

    name = "transcription"

    def advance(self, job: TranscribeJob) -> Transcription | None:
        if job.steps is None:
            job.started = time.perf_counter()
            job.steps = transcribe(job, job.model.loaded.model, job.model.tokenizer)
        deadline = time.perf_counter() + SLICE_SECONDS
        try:
            next(job.steps)
            while time.perf_counter() < deadline:
                next(job.steps)
        except StopIteration as done:
            job.mel = None  # the biggest thing it holds, not needed any more
            return done.value
        return None


def transcribe(job: TranscribeJob, model: Whisper, tokenizer) -> Generator[None, None, Transcription]:
    request: TranscriptionRequest = job.request
    config = model.config
    mel = job.mel
    assert mel is not None
    rng = np.random.default_rng()
    suppress = np.array(tokenizer.suppressed())
    blank = np.array(tokenizer.encode(" ") + [tokenizer.eot])
    input_stride = melspec.N_FRAMES // config.n_audio_ctx  # mel frames per audio feature: 2
    task = request.task if config.multilingual else "transcribe"  # an English-only model writes English

    language = request.language if config.multilingual else "en"
    first: tuple[int, mx.array] | None = None  # a window's features kept for its decoding: (seek, features)
    if language is None:  # from the first 30 s, as Whisper does (with the padding's frames, not zeros)
        features = yield from _encode(model, mel[: melspec.N_FRAMES])
        language = _detect_language(model, tokenizer, features)
        if job.frames >= melspec.N_FRAMES:  # that is the first window, too
            first = (0, features)
        yield
    sot_sequence = tokenizer.sot_sequence(language, task, config.multilingual)

    seek, all_tokens, reset_since = 0, list(job.prompt), 0
    found: list[Segment] = []
    last_speech = 0.0
    while seek < job.frames:
        size = min(melspec.N_FRAMES, job.frames - seek)
        if first is not None and first[0] == seek:
            features = first[1]
        else:
            features = yield from _encode(model, melspec.window(mel, seek, size))
        cross = []
        for layer in model.decoder.cross_kv(features):
            cross.append(layer)
            yield
        prompt = initial_tokens(tokenizer, sot_sequence, all_tokens[reset_since:], config.n_text_ctx)
        result: Decoded | None = None
        for temperature in job.temperatures:
            decoder = WindowDecoder(model, tokenizer, cross, prompt, temperature, suppress, blank, rng)
            while (result := decoder.step()) is None:
                yield
            if not result.needs_retry():
                break
        assert result is not None
        if result.is_silence():
            seek += size
            continue
        cut = segments(result.tokens, tokenizer.timestamp_begin, seek, size, input_stride)
        pieces = [{"start": start, "end": end, "tokens": tokens, "text_tokens": [t for t in tokens if t < tokenizer.eot]}
                  for start, end, tokens in cut.segments]
        next_seek = cut.next_seek
        if request.words:
            yield
            offset = seek / melspec.FRAMES_PER_SECOND
            text = [t for p in pieces for t in p["text_tokens"]]
            alignment = find_alignment(model, tokenizer, sot_sequence, text, cross, size, language)
            last_speech = word_timestamps(alignment, pieces, offset, last_speech)
            ends = [w.end for p in pieces for w in p["words"]]
            if not cut.single_timestamp_ending and ends and ends[-1] > offset:
                next_seek = round(ends[-1] * melspec.FRAMES_PER_SECOND)
        position = 0  # where each piece's tokens start in the window's
        for piece in pieces:
            logprobs = result.logprobs[position : position + len(piece["tokens"])]
            position += len(piece["tokens"])
            text = tokenizer.decode(piece["text_tokens"])
            if piece["start"] == piece["end"] or not text.strip():
                continue  # an instant, or no words: nothing to show
            segment = Segment(
                id=len(found), seek=seek, start=round(piece["start"], 2), end=round(piece["end"], 2), text=text,
                tokens=tuple(piece["tokens"]), temperature=result.temperature, avg_logprob=result.avg_logprob,
                compression_ratio=result.compression_ratio, no_speech_prob=result.no_speech_prob,
                words=tuple(piece.get("words", ())),
                logprobs=_logprobs(tokenizer, piece["tokens"], logprobs) if request.logprobs else (),
            )
            found.append(segment)
            job.segments.put(segment)
            all_tokens.extend(piece["tokens"])  # timestamps too: they are part of the next window's prompt
        if result.temperature > 0.5:  # text decoded that warm is a poor prompt for the next window
            reset_since = len(all_tokens)
        seek = max(next_seek, seek + 1)
    text = tokenizer.decode(all_tokens[len(job.prompt):])
    return Transcription(text=text, language=language, duration=request.duration, segments=tuple(found),
                         seconds=time.perf_counter() - (job.started or time.perf_counter()))


def _logprobs(tokenizer, tokens: list[int], logprobs: list[float]) -> tuple[TokenLogprob, ...]:
    """The text tokens' log probabilities, with each token's bytes and text."""
    found = []
    for token, logprob in zip(tokens, logprobs):
        if token < tokenizer.eot:
            raw = tokenizer.token_bytes(token)
            found.append(TokenLogprob(raw.decode("utf-8", errors="replace"), tuple(raw), logprob))
    return tuple(found)


def _encode(model: Whisper, window: np.ndarray) -> Generator[None, None, mx.array]:
    """The audio features of one window of mel frames, a piece per step."""
    encoding = EncoderPass(model.encoder, mx.array(window[None]).astype(_dtype(model)))
    while not encoding.step():
        yield
    assert encoding.features is not None
    return encoding.features


def _detect_language(model: Whisper, tokenizer, features: mx.array) -> str:
    """The likeliest language token after ``<|startoftranscript|>``."""
    cross = list(model.decoder.cross_kv(features))
    hidden, _, _ = model.decoder(mx.array([[tokenizer.sot]]), cross)
    logits = np.array(model.decoder.logits(hidden[:, -1]))[0]
    codes = list(tokenizer.languages)
    return codes[int(np.argmax(logits[[tokenizer.languages[c] for c in codes]]))]


def _dtype(model: Whisper) -> mx.Dtype:
    return model.encoder.conv1.weight.dtype

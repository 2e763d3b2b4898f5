"""Decoding one 30-s window, a token per step, as OpenAI's Whisper decodes it.

The prompt is ``<|startofprev|>`` and the text so far (the request's prompt, then what earlier windows
said), then the start of the transcript (``sot_sequence``). Each token is chosen from the logits after
Whisper's rules: nothing that is not speech, no blank start, timestamps in pairs that never go back,
the first within the first second, and a timestamp whenever timestamps together are likelier than any
word. Greedy at temperature 0, sampled above; the window's tokens then cut into segments at their
timestamps (``segments``). The loop that retries a window at a higher temperature is the caller's.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import mlx.core as mx
import numpy as np

from mlxcli.engine.speech.mel import FRAMES_PER_SECOND

if TYPE_CHECKING:
    from mlxcli.engine.speech.tokenizer import WhisperTokenizer
    from mlxcli.engine.speech.whisper import Whisper

TIME_PRECISION = 0.02  # seconds a timestamp token stands for
MAX_INITIAL_TIMESTAMP = 1.0  # seconds: where the first segment may start, at the latest
COMPRESSION_RATIO_THRESHOLD = 2.4  # above: the text repeats itself; retry warmer
LOGPROB_THRESHOLD = -1.0  # below: the model was unsure; retry warmer
NO_SPEECH_THRESHOLD = 0.6  # above (and unsure): the window is silence


@dataclass
class Decoded:
    """A window's text tokens (timestamps included, end-of-text not) and how sure the model was."""

    tokens: list[int]
    logprobs: list[float]  # of each token
    temperature: float
    avg_logprob: float
    no_speech_prob: float
    compression_ratio: float = 0.0

    def needs_retry(self) -> bool:
        """Whisper's fallback test: repetitive or unsure text, unless the window is silence."""
        if self.no_speech_prob > NO_SPEECH_THRESHOLD:
            return False
        return self.compression_ratio > COMPRESSION_RATIO_THRESHOLD or self.avg_logprob < LOGPROB_THRESHOLD

    def is_silence(self) -> bool:
        return self.no_speech_prob > NO_SPEECH_THRESHOLD and self.avg_logprob <= LOGPROB_THRESHOLD


def compression_ratio(text: str) -> float:
    data = text.encode("utf-8")
    return len(data) / len(zlib.compress(data)) if data else 0.0


def initial_tokens(tokenizer: "WhisperTokenizer", sot_sequence: list[int], previous: list[int], n_ctx: int) -> list[int]:
    """The prompt of a window: the previous text (its last half-context of tokens) before the start."""
    if not previous:
        return list(sot_sequence)
    return [tokenizer.sot_prev, *previous[-(n_ctx // 2 - 1) :], *sot_sequence]


@dataclass
class WindowDecoder:
    """One decoding of one window at one temperature; ``step`` reads a few tokens."""

    model: "Whisper"
    tokenizer: "WhisperTokenizer"
    cross: list[tuple[mx.array, mx.array]]  # the window's cross-attention keys and values
    prompt: list[int]
    temperature: float
    suppress: np.ndarray  # token ids never sampled
    blank: np.ndarray  # never sampled first (a space, end-of-text)
    rng: np.random.Generator
    tokens: list[int] = field(default_factory=list)  # sampled so far
    logprobs: list[float] = field(default_factory=list)  # of each
    sum_logprob: float = 0.0
    no_speech_prob: float = 0.0
    _cache: list | None = None
    _hidden: mx.array | None = None  # the last position's hidden state, not yet read

    def step(self, count: int = 1) -> Decoded | None:
        """Up to ``count`` more tokens; the result once the window's text is complete."""
        n_ctx = self.model.config.n_text_ctx
        for _ in range(count):
            logits = self._next_logits()
            token = self._choose(logits)
            if token == self.tokenizer.eot:
                return self._result()
            self.tokens.append(token)
            if len(self.tokens) >= n_ctx // 2 or len(self.prompt) + len(self.tokens) > n_ctx:
                return self._result()  # Whisper's limit: half the context, and the context itself
            self._feed([token])
        return None

    def _next_logits(self) -> np.ndarray:
        decoder = self.model.decoder
        if self._cache is None:  # the prompt, all at once
            self._feed(self.prompt)
            sot = len(self.prompt) - self.prompt[::-1].index(self.tokenizer.sot) - 1
            at_sot = np.array(decoder.logits(self._all_hidden[:, sot]))[0]
            self.no_speech_prob = float(_softmax(at_sot)[self.tokenizer.no_speech])
        return np.array(decoder.logits(self._hidden))[0]

    def _feed(self, tokens: list[int]) -> None:
        hidden, self._cache, _ = self.model.decoder(mx.array([tokens]), self.cross, self._cache)
        self._all_hidden = hidden
        self._hidden = hidden[:, -1]

    def _choose(self, logits: np.ndarray) -> int:
        t = self.tokenizer
        logits = logits.copy()
        if not self.tokens:
            logits[self.blank] = -np.inf
        logits[self.suppress] = -np.inf
        apply_timestamp_rules(logits, self.tokens, t)
        logprobs = _log_softmax(logits)
        if self.temperature > 0:
            probs = _softmax(logits / self.temperature)
            token = int(self.rng.choice(len(probs), p=probs))
        else:
            token = int(np.argmax(logits))
        self.sum_logprob += float(logprobs[token])
        self.logprobs.append(float(logprobs[token]))
        return token

    def _result(self) -> Decoded:
        text = self.tokenizer.decode(self.tokens)
        return Decoded(
            tokens=list(self.tokens),
            logprobs=self.logprobs[: len(self.tokens)],
            temperature=self.temperature,
            avg_logprob=self.sum_logprob / (len(self.tokens) + 1),
            no_speech_prob=self.no_speech_prob,
            compression_ratio=compression_ratio(text),
        )


def apply_timestamp_rules(logits: np.ndarray, sampled: list[int], t: "WhisperTokenizer") -> None:
    """Whisper's timestamp rules on the next token's logits, in place (see the module's docstring)."""
    begin = t.timestamp_begin
    logits[t.no_timestamps] = -np.inf
    last_was_timestamp = len(sampled) >= 1 and sampled[-1] >= begin
    penultimate_was_timestamp = len(sampled) < 2 or sampled[-2] >= begin
    if last_was_timestamp:
        if penultimate_was_timestamp:  # a pair is complete: text (or the end) comes next
            logits[begin:] = -np.inf
        else:  # a pair is open: its closing timestamp, or the end
            logits[: t.eot] = -np.inf
    stamps = [s for s in sampled if s >= begin]
    if stamps:  # never back in time; a segment is never empty
        floor = stamps[-1] if last_was_timestamp and not penultimate_was_timestamp else stamps[-1] + 1
        logits[begin:floor] = -np.inf
    if not sampled:  # a timestamp first, within the first second
        logits[:begin] = -np.inf
        logits[begin + round(MAX_INITIAL_TIMESTAMP / TIME_PRECISION) + 1 :] = -np.inf
    logprobs = _log_softmax(logits)
    stamp_mass = np.logaddexp.reduce(logprobs[begin:])
    if stamp_mass > logprobs[:begin].max():
        logits[:begin] = -np.inf


def _log_softmax(x: np.ndarray) -> np.ndarray:
    top = x.max()
    shifted = x - top
    return shifted - np.log(np.exp(shifted).sum())


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max())
    return e / e.sum()


@dataclass
class Cut:
    """A window's tokens as segments (start, end in seconds; their tokens), and where the next window starts."""

    segments: list[tuple[float, float, list[int]]]
    next_seek: int
    single_timestamp_ending: bool


def segments(tokens: list[int], begin: int, seek: int, size: int, input_stride: int) -> Cut:
    """Cut ``tokens`` at each pair of consecutive timestamps (Whisper's rule); ``seek`` and ``size``:
    the window's first frame and its frames of audio. ``begin``: the first timestamp token."""
    offset = seek / FRAMES_PER_SECOND
    is_stamp = [tok >= begin for tok in tokens]
    single_ending = is_stamp[-2:] == [False, True]
    consecutive = [i + 1 for i in range(len(tokens) - 1) if is_stamp[i] and is_stamp[i + 1]]
    if consecutive:
        cuts = consecutive + ([len(tokens)] if single_ending else [])
        found, last = [], 0
        for cut in cuts:
            piece = tokens[last:cut]
            found.append((offset + (piece[0] - begin) * TIME_PRECISION, offset + (piece[-1] - begin) * TIME_PRECISION, piece))
            last = cut
        next_seek = seek + size if single_ending else seek + (tokens[last - 1] - begin) * input_stride
        return Cut(found, next_seek, single_ending)
    duration = size / FRAMES_PER_SECOND
    stamps = [tok for tok in tokens if tok >= begin]
    if stamps and stamps[-1] != begin:
        duration = (stamps[-1] - begin) * TIME_PRECISION
    return Cut([(offset, offset + duration, tokens)], seek + size, single_ending)

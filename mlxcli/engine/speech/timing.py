"""Word timestamps, as OpenAI's Whisper finds them: the cross-attention of the alignment heads over the
window's text, normalised and median-filtered, aligned to the audio frames by dynamic time warping;
a word starts where the path first reaches its first token. Then Whisper's touch-ups: punctuation
joins its word, and words over twice the median length at sentence or segment edges are cut back.

The window's audio features are reused (Whisper encodes the window again for this).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import mlx.core as mx
import numpy as np

from mlxcli.core.transcription import Word

if TYPE_CHECKING:
    from mlxcli.engine.speech.tokenizer import WhisperTokenizer
    from mlxcli.engine.speech.whisper import Whisper

TOKENS_PER_SECOND = 50  # audio features per second: 20 ms each
MEDIAN_FILTER = 7
PREPEND = "\"'“¿([{-"
APPEND = "\"'.。,，!！?？:：”)]}、"
SENTENCE_ENDS = ".。!！?？"


@dataclass
class Timing:
    word: str
    tokens: list[int]
    start: float
    end: float
    probability: float


def median_filter(x: np.ndarray, width: int) -> np.ndarray:
    """A median over ``width`` neighbours along the last axis, the edges reflected."""
    pad = width // 2
    if x.shape[-1] <= pad:
        return x
    padded = np.pad(x, [(0, 0)] * (x.ndim - 1) + [(pad, pad)], mode="reflect")
    return np.median(np.lib.stride_tricks.sliding_window_view(padded, width, axis=-1), axis=-1)


def dtw(cost: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The cheapest monotonic path through ``cost`` ``(tokens, frames)``: its token and frame indices.
    Filled one anti-diagonal at a time (every cell of one depends only on the two before it)."""
    n, m = cost.shape
    total = np.full((n + 1, m + 1), np.inf, np.float32)
    trace = np.full((n + 1, m + 1), -1, np.int8)
    total[0, 0] = 0
    for d in range(2, n + m + 1):
        i = np.arange(max(1, d - m), min(n, d - 1) + 1)
        j = d - i
        c0, c1, c2 = total[i - 1, j - 1], total[i - 1, j], total[i, j - 1]
        step = np.where((c0 < c1) & (c0 < c2), 0, np.where((c1 < c0) & (c1 < c2), 1, 2))
        total[i, j] = cost[i - 1, j - 1] + np.choose(step, [c0, c1, c2])
        trace[i, j] = step
    trace[0, :] = 2
    trace[:, 0] = 1
    i, j, path = n, m, []
    while i > 0 or j > 0:
        path.append((i - 1, j - 1))
        move = trace[i, j]
        i, j = (i - 1, j - 1) if move == 0 else (i - 1, j) if move == 1 else (i, j - 1)
    path.reverse()
    return np.array([p[0] for p in path]), np.array([p[1] for p in path])


def find_alignment(model: "Whisper", tokenizer: "WhisperTokenizer", sot_sequence: list[int], text_tokens: list[int],
                   cross: list[tuple[mx.array, mx.array]], frames: int, language: str) -> list[Timing]:
    """Each word of ``text_tokens`` with its start and end (seconds into the window) and probability."""
    if not text_tokens:
        return []
    tokens = [*sot_sequence, tokenizer.no_timestamps, *text_tokens, tokenizer.eot]
    hidden, _, scores = model.decoder(mx.array([tokens]), cross, with_qk=True)
    start = len(sot_sequence)
    logits = model.decoder.logits(hidden[0, start : start + len(text_tokens)])[:, : tokenizer.eot]
    probs = mx.softmax(logits, axis=-1, precise=True)
    token_probs = np.array(mx.take_along_axis(probs, mx.array(text_tokens)[:, None], axis=1)[:, 0])
    heads = mx.stack([scores[layer][0, head] for layer, head in np.array(model.alignment_heads).tolist()])
    weights = mx.softmax(heads[:, :, : frames // 2].astype(mx.float32), axis=-1, precise=True)
    weights = np.array((weights - weights.mean(axis=-2, keepdims=True)) / mx.sqrt(weights.var(axis=-2, keepdims=True)))
    matrix = median_filter(weights, MEDIAN_FILTER).mean(axis=0)[start:-1]
    text_indices, time_indices = dtw(-matrix)

    words, word_tokens = tokenizer.split_words(text_tokens + [tokenizer.eot], language)
    if len(word_tokens) <= 1:
        return []
    boundaries = np.pad(np.cumsum([len(t) for t in word_tokens[:-1]]), (1, 0))
    jumps = np.pad(np.diff(text_indices), (1, 0), constant_values=1).astype(bool)
    jump_times = time_indices[jumps] / TOKENS_PER_SECOND
    return [
        Timing(word, ids, float(jump_times[a]), float(jump_times[b]), float(np.mean(token_probs[a:b])))
        for word, ids, a, b in zip(words, word_tokens, boundaries[:-1], boundaries[1:])
    ]


def merge_punctuations(alignment: list[Timing]) -> None:
    """Opening punctuation joins the word after it, closing punctuation the word before (in place)."""
    i, j = len(alignment) - 2, len(alignment) - 1
    while i >= 0:
        previous, following = alignment[i], alignment[j]
        if previous.word.startswith(" ") and previous.word.strip() in PREPEND:
            following.word, following.tokens = previous.word + following.word, previous.tokens + following.tokens
            previous.word, previous.tokens = "", []
        else:
            j = i
        i -= 1
    i, j = 0, 1
    while j < len(alignment):
        previous, following = alignment[i], alignment[j]
        if not previous.word.endswith(" ") and following.word in APPEND:
            previous.word, previous.tokens = previous.word + following.word, previous.tokens + following.tokens
            following.word, following.tokens = "", []
        else:
            i = j
        j += 1


def word_timestamps(alignment: list[Timing], segments: list[dict], offset: float, last_speech: float) -> float:
    """Give each segment (``start``, ``end``, ``text_tokens``) its ``words`` from the window's
    ``alignment``, moving a segment's edges to its words'; returns the end of the last speech."""
    durations = np.array([t.end - t.start for t in alignment])
    durations = durations[durations.nonzero()]
    median = min(0.7, float(np.median(durations))) if len(durations) else 0.0
    longest = median * 2
    if len(durations):  # a word at a sentence's edge is not longer than twice the median
        for i in range(1, len(alignment)):
            if alignment[i].end - alignment[i].start > longest:
                if alignment[i].word in SENTENCE_ENDS:
                    alignment[i].end = alignment[i].start + longest
                elif alignment[i - 1].word in SENTENCE_ENDS:
                    alignment[i].start = alignment[i].end - longest
    merge_punctuations(alignment)
    index = 0
    for segment in segments:
        saved, words = 0, []
        while index < len(alignment) and saved < len(segment["text_tokens"]):
            timing = alignment[index]
            if timing.word:
                words.append(Word(timing.word, round(offset + timing.start, 2), round(offset + timing.end, 2), timing.probability))
            saved += len(timing.tokens)
            index += 1
        if words:
            words = _trim_edges(words, segment, last_speech, median, longest)
            last_speech = segment["end"]
        segment["words"] = words
    return last_speech


def _trim_edges(words: list[Word], segment: dict, last_speech: float, median: float, longest: float) -> list[Word]:
    """Whisper's cuts of over-long first and last words (after a pause, at the segment's edges)."""
    w = [[x.word, x.start, x.end, x.probability] for x in words]
    first_long = w[0][2] - w[0][1] > longest or (len(w) > 1 and w[1][2] - w[0][1] > longest * 2)
    if w[0][2] - last_speech > median * 4 and first_long:
        if len(w) > 1 and w[1][2] - w[1][1] > longest:
            boundary = max(w[1][2] / 2, w[1][2] - longest)
            w[0][2] = w[1][1] = boundary
        w[0][1] = max(0, w[0][2] - longest)
    if segment["start"] < w[0][2] and segment["start"] - 0.5 > w[0][1]:
        w[0][1] = max(0, min(w[0][2] - median, segment["start"]))
    else:
        segment["start"] = w[0][1]
    if segment["end"] > w[-1][1] and segment["end"] + 0.5 < w[-1][2]:
        w[-1][2] = max(w[-1][1] + median, segment["end"])
    else:
        segment["end"] = w[-1][2]
    return [Word(word, start, end, p) for word, start, end, p in w]

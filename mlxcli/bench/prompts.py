"""Benchmark prompts with an exact token count.

A prompt is one user message: a story opening, then an instruction that asks for a long
continuation (so that generation keeps going). Its length is tuned with the model's own
tokenizer until the *rendered* chat prompt (template, system text and all) has exactly the
requested number of tokens. Every ``seed`` gives a different opening, so no two requests of a
run share more than the chat template's own prefix (a prompt cache must not flatter prefill);
a run starts from a random seed, so neither do two runs.
"""

from __future__ import annotations

import io
import itertools
from dataclasses import replace
from typing import Callable

from mlxcli.core.request import ChatRequest, ImageInput, Message

# Counts the tokens of a rendered request (the engine's render, or engine.tokens.PromptCounter).
TokenCounter = Callable[[ChatRequest], int]

STORY = (
    "The lighthouse keeper had not spoken to anyone in eleven days when the boat appeared on the "
    "horizon. It was small and painted a faded green, and it moved against the wind as if something "
    "beneath the water were pulling it toward the rocks. She watched it through the salt-streaked "
    "window while the kettle hissed behind her, and she thought about the letter her brother had "
    "sent in the spring, the one she had never answered. The radio crackled with a voice she did not "
    "recognise, asking for the harbour master, then for anyone at all. Outside, gulls circled the "
    "lantern room, and the tide was turning faster than the tables said it should. She put on her "
    "heavy coat, took the brass lamp from its hook, and went down the spiral stairs, counting each "
    "step the way her father had taught her, one hundred and twelve steps from the light to the door."
).split()
INSTRUCTION = "\n\nContinue this story. Write at least two thousand more words, with dialogue."
# Fillers that close the last small gap, one token each with most tokenizers; every one is measured.
FILLERS = (" a", " I", " the", " and", " so", " it", ".", ",")
LABEL_DIGITS = 7  # "Story 0000042:": a fixed width, so the shortest prompt is the same for every seed
BACKTRACK = 16  # word counts tried below the longest that fits, before giving up


def _label(seed: int) -> str:
    return f"Story {seed:0{LABEL_DIGITS}d}:"


def _user_text(seed: int, words: int, fill: str = "") -> str:
    start = (seed * 37) % len(STORY)
    opening = itertools.islice(itertools.cycle(STORY[start:] + STORY[:start]), words)
    return _label(seed) + "".join(" " + word for word in opening) + fill + INSTRUCTION


def _measure(count: TokenCounter, text: str) -> int:
    return count(ChatRequest(messages=[Message("user", text)]))


def shortest(count: TokenCounter, seed: int = 0) -> int:
    """The fewest tokens a benchmark prompt can have with this tokenizer (the same for every seed
    below 10^7, with the usual digit-by-digit tokenization of the label)."""
    return _measure(count, _user_text(seed, 0))


def build_prompt(count: TokenCounter, tokens: int, *, seed: int = 0) -> list[Message]:
    """One user message whose rendered chat prompt has exactly ``tokens`` tokens.

    Any length from the shortest prompt up can be built, for every seed: the opening gets as many
    words as fit, then the gap that is left is filled a token at a time, each filler checked by
    measuring the rendered prompt again (tokenizers merge across word boundaries in ways no
    arithmetic on word counts predicts).
    """

    def measure(text: str) -> int:
        return _measure(count, text)

    least = shortest(count, seed)
    if tokens < least:
        raise ValueError(f"a prompt of {tokens} tokens is too short: this model's shortest benchmark prompt has {least}")
    # The largest number of words that still fits (each word is at least one token).
    low, high = 0, tokens
    while low < high:
        mid = (low + high + 1) // 2
        if measure(_user_text(seed, mid)) <= tokens:
            low = mid
        else:
            high = mid - 1
    for words in [*range(low, max(low - BACKTRACK, 0) - 1, -1), *([0] if low > BACKTRACK else [])]:
        fill = _fill(lambda f: measure(_user_text(seed, words, f)), tokens)
        if fill is not None:
            return [Message("user", _user_text(seed, words, fill))]
    raise ValueError(f"could not build a prompt of exactly {tokens} tokens with this tokenizer")


def _fill(measure: Callable[[str], int], tokens: int) -> str | None:
    """Filler text that makes ``measure(filler)`` exactly ``tokens``, or None if none does."""
    fill = ""
    current = measure(fill)
    while current < tokens:
        gap = tokens - current
        if gap > 1:  # the usual case at once: the same filler, gap times
            for filler in FILLERS:
                if measure(fill + filler * gap) == tokens:
                    return fill + filler * gap
        for filler in FILLERS:  # else one token more, checked
            if measure(fill + filler) == current + 1:
                fill, current = fill + filler, current + 1
                break
        else:
            return None
    return fill if current == tokens else None


class PromptSet:
    """Prompts of a given length, one per seed (counted from ``first_seed``), built once and shared
    by every target. With ``image_size``, each also carries an image of that many pixels square (random
    pixels, one per seed): ``tokens`` counts the text, the image adds the model's image tokens."""

    def __init__(self, count: TokenCounter, first_seed: int = 0, image_size: int | None = None):
        self.count = count
        self.first_seed = first_seed
        self.image_size = image_size
        self._cache: dict[tuple[int, int], list[Message]] = {}

    def get(self, tokens: int, seed: int) -> list[Message]:
        key = (tokens, seed)
        if key not in self._cache:
            messages = build_prompt(self.count, tokens, seed=self.first_seed + seed)
            if self.image_size:
                messages[-1] = replace(messages[-1], images=[noise_image(self.image_size, self.first_seed + seed)])
            self._cache[key] = messages
        return self._cache[key]


def noise_image(size: int, seed: int) -> ImageInput:
    import numpy as np
    from PIL import Image

    from mlxcli.server.images import decode

    out = io.BytesIO()
    pixels = (np.random.default_rng(seed).random((size, size, 3)) * 255).astype("uint8")
    Image.fromarray(pixels).save(out, format="PNG")
    return decode(out.getvalue(), "image")

"""Whisper's tokenizer: its byte-level BPE (``tokenizer.json``, read with the ``tokenizers`` library) and
the special tokens decoding steers by, found by name (English-only and multilingual vocabularies
number them differently). Timestamp tokens follow ``<|notimestamps|>``: one per 20 ms of a window.
"""

from __future__ import annotations

import string
import threading
from functools import cached_property
from pathlib import Path

from mlxcli.core.errors import ModelError
from mlxcli.core.transcription import LANGUAGES

def _byte_characters() -> dict[str, int]:
    """GPT-2's byte-level alphabet: the printable bytes stand for themselves, the others for 256 + n."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    others = [b for b in range(256) if b not in printable]
    return {chr(b): b for b in printable} | {chr(256 + n): b for n, b in enumerate(others)}


_BYTES = _byte_characters()
NO_SPACES = ("zh", "ja", "th", "lo", "my", "yue")  # words are not separated by spaces


class WhisperTokenizer:
    def __init__(self, path: Path):
        from tokenizers import Tokenizer

        try:
            self._tokenizer = Tokenizer.from_file(str(path))
        except Exception as exc:  # the Rust library raises its own exception types
            raise ModelError(f"cannot read the Whisper tokenizer {path}: {exc}") from exc
        self._lock = threading.Lock()  # one encoder shared by the request threads

        def special(*names: str) -> int:
            for name in names:
                if (token := self._tokenizer.token_to_id(name)) is not None:
                    return token
            raise ModelError(f"{path} has no {names[0]} token: not a Whisper tokenizer")

        self.eot = special("<|endoftext|>")
        self.sot = special("<|startoftranscript|>")
        self.translate = special("<|translate|>")
        self.transcribe = special("<|transcribe|>")
        self.sot_lm = special("<|startoflm|>")
        self.sot_prev = special("<|startofprev|>")
        self.no_speech = special("<|nospeech|>", "<|nocaptions|>")
        self.no_timestamps = special("<|notimestamps|>")
        self.timestamp_begin = self.no_timestamps + 1
        self.languages = {code: token for code in LANGUAGES if (token := self._tokenizer.token_to_id(f"<|{code}|>")) is not None
                          and self.sot < token < self.translate}

    def encode(self, text: str) -> list[int]:
        with self._lock:
            return self._tokenizer.encode(text, add_special_tokens=False).ids

    def decode(self, tokens: list[int]) -> str:
        """The text of ``tokens``; special and timestamp tokens are left out."""
        with self._lock:
            return self._tokenizer.decode([t for t in tokens if t < self.eot])

    def token_bytes(self, token: int) -> bytes:
        """A token's own bytes (byte-level BPE: each byte is written as one printable character)."""
        piece = self._tokenizer.id_to_token(token) or ""
        return bytes(_BYTES.get(c, 32) for c in piece)

    def decode_with_specials(self, tokens: list[int]) -> str:
        with self._lock:
            return self._tokenizer.decode([t for t in tokens if t < self.timestamp_begin], skip_special_tokens=False)

    def sot_sequence(self, language: str | None, task: str, multilingual: bool) -> list[int]:
        """What starts a window: an English-only model takes no language or task."""
        if not multilingual:
            return [self.sot]
        return [self.sot, self.languages[language or "en"], self.translate if task == "translate" else self.transcribe]

    @cached_property
    def non_speech(self) -> tuple[int, ...]:
        """Tokens of speaker tags and sound descriptions (``♪♪``, ``[DAVID]``, ``( LAUGHS )``): never
        written, as OpenAI's Whisper decides them; basic punctuation stays."""
        symbols = list('"#()*+/:;<=>@[\\]^_`{|}~「」『』')
        symbols += "<< >> <<< >>> -- --- -( -[ (' (\" (( )) ((( ))) [[ ]] {{ }} ♪♪ ♪♪♪".split()
        miscellaneous = set("♩♪♫♬♭♮♯")
        result = {self.encode(" -")[0], self.encode(" '")[0]}
        for symbol in symbols + sorted(miscellaneous):
            for tokens in (self.encode(symbol), self.encode(" " + symbol)):
                if len(tokens) == 1 or symbol in miscellaneous:
                    result.add(tokens[0])
        return tuple(sorted(result))

    def suppressed(self) -> list[int]:
        """What decoding never samples: non-speech tokens and the special ones."""
        return sorted({*self.non_speech, self.transcribe, self.translate, self.sot, self.sot_prev, self.sot_lm, self.no_speech})

    def split_words(self, tokens: list[int], language: str) -> tuple[list[str], list[list[int]]]:
        """``tokens`` cut into words (with their leading space), or into characters where the language
        writes no spaces; a token that is part of a character's bytes stays with the rest of them."""
        pieces, piece_tokens = self._split_on_unicode(tokens)
        if language in NO_SPACES:
            return pieces, piece_tokens
        words: list[str] = []
        word_tokens: list[list[int]] = []
        for piece, ids in zip(pieces, piece_tokens):
            if ids[0] >= self.eot or piece.startswith(" ") or piece.strip() in string.punctuation or not words:
                words.append(piece)
                word_tokens.append(list(ids))
            else:
                words[-1] += piece
                word_tokens[-1].extend(ids)
        return words, word_tokens

    def _split_on_unicode(self, tokens: list[int]) -> tuple[list[str], list[list[int]]]:
        full = self.decode_with_specials(tokens)
        pieces: list[str] = []
        piece_tokens: list[list[int]] = []
        current: list[int] = []
        offset = 0
        for token in tokens:
            current.append(token)
            decoded = self.decode_with_specials(current)
            if "\ufffd" not in decoded or full[offset + decoded.index("\ufffd")] == "\ufffd":
                pieces.append(decoded)
                piece_tokens.append(current)
                current = []
                offset += len(decoded)
        return pieces, piece_tokens

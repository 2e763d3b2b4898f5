"""Structured outputs: a request's grammar (grammars.py) compiled by llguidance into a matcher that
masks each step's logits, as one more logits processor of that request.

``compile`` runs at submit, on the caller's thread (before a stream's 200), so a schema llguidance
cannot compile is a 400 naming its parameter, with llguidance's reason. The llguidance tokenizer
(about a second for a 49k vocabulary) is built once per model tokenizer, on first use. A request
without a constraint has no processor at all, so it pays nothing, also in a batch with constrained
ones; a finished or cancelled request's matcher goes with its processor.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import weakref

import mlx.core as mx
import numpy as np
from llguidance import LLMatcher, LLTokenizer
from mlx_lm.tokenizer_utils import TokenizerWrapper

from mlxcli.core.errors import InvalidRequest
from mlxcli.core.request import ChatRequest, Grammar
from mlxcli.engine import grammars
from mlxcli.engine.output import OutputPlan

log = logging.getLogger("mlxcli.engine")

MAX_REASON = 600  # characters of llguidance's message in an error


class _Tokenizers:
    """llguidance's view of each model tokenizer, built once."""

    def __init__(self) -> None:
        self._made: weakref.WeakKeyDictionary[TokenizerWrapper, dict[tuple[int, ...], LLTokenizer]] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()
        self.build_seconds: list[float] = []  # for `mlxcli bench`

    def get(self, tokenizer: TokenizerWrapper, stop_tokens: tuple[int, ...]) -> LLTokenizer:
        with self._lock:
            made = self._made.setdefault(tokenizer, {}).get(stop_tokens)
            if made is None:
                import llguidance.hf  # imports transformers: only once a constraint is used

                started = time.perf_counter()
                made = self._made[tokenizer][stop_tokens] = llguidance.hf.from_tokenizer(tokenizer._tokenizer, eos_token=list(stop_tokens))
                self.build_seconds.append(time.perf_counter() - started)
                log.info("built the structured-output tokenizer in %.2fs", self.build_seconds[-1])
            return made


TOKENIZERS = _Tokenizers()


def special_tokens(tokenizer: TokenizerWrapper) -> frozenset[str]:
    decoder = getattr(tokenizer._tokenizer, "added_tokens_decoder", None) or {}
    return frozenset(t.content for t in decoder.values() if t.special)


def compile(request: ChatRequest, plan: OutputPlan, tokenizer: TokenizerWrapper, stop_tokens: frozenset[int]) -> "Constraint | None":
    """The request's constraint, or None when its output is free (``stop_tokens``: the ids that end an
    answer). Raises InvalidRequest naming the parameter whose schema or grammar llguidance cannot compile."""
    built = grammars.build(request, plan, special_tokens(tokenizer))
    if built is None:
        return None
    grammar, pieces = built
    stops = tuple(sorted(stop_tokens))
    lltok = TOKENIZERS.get(tokenizer, stops)
    matcher = LLMatcher(lltok, grammar, log_level=0)  # never raises: an error is its state
    if matcher.is_error():
        _blame(request, pieces, lltok, matcher.get_error())
    return Constraint(matcher, list(stops))


def _blame(request: ChatRequest, pieces: list[grammars.Piece], lltok: LLTokenizer, error: str) -> None:
    """Raise the error of the first piece that fails on its own (each strict schema apart from the call
    around it), so that it names its parameter; else the grammar's own error."""
    for tool in request.tools:
        if tool.strict and not tool.custom:
            _check(grammars.alone(Grammar("json", tool.param, tool.parameters)), tool.param, lltok)
    for piece in pieces:
        _check(json.dumps({"grammars": [piece.body]}), piece.param, lltok)
    param = request.response_format.param if request.response_format else "tools"
    raise InvalidRequest(f"Invalid schema or grammar for '{param}': {_reason([error])}", param=param, code="invalid_value")


def _check(grammar: str, param: str, lltok: LLTokenizer) -> None:
    is_error, messages = LLMatcher.validate_grammar_with_warnings(grammar, lltok)
    if is_error:
        raise InvalidRequest(f"Invalid schema or grammar for '{param}': {_reason(messages)}", param=param, code="invalid_value")


def _reason(messages: list[str]) -> str:
    return " ".join(messages[0].split())[:MAX_REASON] if messages and messages[0] else "unknown error"


class Constraint:
    """A logits processor (``processor(tokens, logits) → logits``) that allows only tokens the grammar
    accepts next. mlx-lm calls it once per generated token, with every token so far: the first call
    (after the prompt) consumes nothing, each later one first consumes the token sampled last."""

    def __init__(self, matcher: LLMatcher, eos: list[int]):
        self.matcher = matcher
        self._eos = eos
        self._started = False

    def __call__(self, tokens: mx.array, logits: mx.array) -> mx.array:
        if self._started:
            self.matcher.consume_token(int(tokens[-1].item()))
        self._started = True
        width = logits.shape[-1]
        if self.matcher.is_error():  # cannot happen under its own mask; end the answer rather than run free
            log.warning("structured output: the matcher failed (%s); ending the answer", self.matcher.get_error()[:200])
            allowed = np.zeros(width, dtype=np.uint8)
            allowed[self._eos] = 1
        else:
            allowed = np.unpackbits(np.frombuffer(self.matcher.compute_bitmask(), dtype=np.uint8), bitorder="little")
            if allowed.size < width:  # the model's vocabulary is padded beyond the tokenizer's
                allowed = np.concatenate([allowed, np.zeros(width - allowed.size, dtype=np.uint8)])
        return mx.where(mx.array(allowed[:width].astype(np.bool_)), logits, -mx.inf)

    # For speculation (speculation/verify.py): ``ahead`` starts with the token sampled last, which the
    # matcher consumes on the next call.

    def limit(self, ahead: list[int]) -> int:
        """How many of the tokens ``ahead`` the grammar allows, in a row."""
        return self.matcher.validate_tokens(ahead) if self._started else 0

    def rewind(self, n: int) -> None:
        """Forget the last ``n`` tokens consumed (proposals the target did not take)."""
        self.matcher.rollback(n)

"""Prompt lookup: a row proposes the tokens that followed, earlier in its own context (its prompt, then
its answer so far), the last few tokens it has. What a coding agent's answer mostly is: a file sent
back with one change, a patch, a JSON object echoed.

Once a proposal came true, the row keeps following the same place (the file it is copying) for as long
as its tokens match it; only where they part does it look the place up again: the longest suffix of
2 to ``MAX_NGRAM`` tokens that occurred before, at its latest occurrence. A place close to the end
proposes a repetition of what follows it (a token repeated, a line repeated). Pure Python: no MLX.
"""

from __future__ import annotations

MAX_NGRAM = 4
MIN_NGRAM = 2


class PromptLookup:
    """One row's context and where, in it, the row's next tokens may be copied from."""

    def __init__(self, tokens: list[int]):
        self.tokens: list[int] = []
        # n-gram → the position after its latest occurrence (whose continuation is known)
        self._index: dict[tuple[int, ...], int] = {}
        self._follow: int | None = None  # the position whose token the row's next one is expected to be
        self.extend(tokens)

    def extend(self, tokens: list[int]) -> None:
        """The row's next tokens (in its cache or handed out)."""
        for token in tokens:
            follow = self._follow
            self._follow = follow + 1 if follow is not None and self.tokens[follow] == token else None
            self.tokens.append(token)
            end = len(self.tokens) - 1  # the n-grams that end just before ``token`` continue with it
            for n in range(MIN_NGRAM, MAX_NGRAM + 1):
                if end >= n:
                    self._index[tuple(self.tokens[end - n : end])] = end

    def propose(self, limit: int) -> list[int]:
        """Up to ``limit`` tokens that may come next."""
        if limit <= 0:
            return []
        if self._follow is None:
            self._follow = self._find()
        if self._follow is None:
            return []
        # Copying on past the end copies what was just copied (a repeating stretch: "a b a b", a row of a
        # table, a loop), as LZ77 does: the token at ``len + i`` is the one at ``follow + i``.
        out = self.tokens[self._follow : self._follow + limit]
        while len(out) < limit:
            out.append(out[len(out) - (len(self.tokens) - self._follow)])
        return out

    def _find(self) -> int | None:
        for n in range(MAX_NGRAM, MIN_NGRAM - 1, -1):
            if len(self.tokens) > n:
                found = self._index.get(tuple(self.tokens[-n:]))
                if found is not None:
                    return found
        return None

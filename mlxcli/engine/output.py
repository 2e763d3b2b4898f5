"""Generated text → neutral events: stop sequences first, then routing of the text.

Stop strings are matched on decoded text, not token ids: the same string can be
tokenized differently inside a sentence than on its own.
"""

from __future__ import annotations

from mlxcli.core.events import Event, TextDelta


class StopMatcher:
    """Finds the first stop string in a stream of text, holding back possible prefixes."""

    def __init__(self, stop: list[str]):
        self.stop = [s for s in stop if s]
        self.pending = ""

    def feed(self, text: str) -> tuple[str, str | None]:
        """Returns (text safe to emit, the stop string matched or None)."""
        buf = self.pending + text
        if not self.stop:
            self.pending = ""
            return buf, None
        hits = [(buf.find(s), s) for s in self.stop]
        hits = [(i, s) for i, s in hits if i >= 0]
        if hits:
            index, matched = min(hits)
            self.pending = ""
            return buf[:index], matched
        hold = self._held_suffix(buf)
        self.pending = buf[len(buf) - hold :]
        return buf[: len(buf) - hold], None

    def flush(self) -> str:
        text, self.pending = self.pending, ""
        return text

    def _held_suffix(self, buf: str) -> int:
        """Length of the longest suffix of ``buf`` that begins some stop string."""
        longest = min(len(buf), max(len(s) for s in self.stop) - 1)
        for n in range(longest, 0, -1):
            tail = buf[-n:]
            if any(s.startswith(tail) for s in self.stop):
                return n
        return 0


class OutputProcessor:
    """Turns the text of one generation into events."""

    def __init__(self, stop: list[str]):
        self.stop_matcher = StopMatcher(stop)

    def feed(self, text: str) -> tuple[list[Event], str | None]:
        visible, stop_hit = self.stop_matcher.feed(text)
        return self._route(visible), stop_hit

    def finish(self) -> list[Event]:
        """Flush held-back text at the end of generation (not after a stop string)."""
        return self._route(self.stop_matcher.flush())

    def _route(self, text: str) -> list[Event]:
        return [TextDelta(text)] if text else []

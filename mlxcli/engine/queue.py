"""A bounded FIFO of pending jobs that refuses at once when full."""

from __future__ import annotations

import threading
from collections import deque
from typing import Generic, TypeVar

from mlxcli.core.errors import Overloaded

T = TypeVar("T")


class BoundedQueue(Generic[T]):
    """``wakes``: another queue whose ``get`` returns (None, when it has nothing) once this one gets an item."""

    def __init__(self, maxsize: int, wakes: "BoundedQueue | None" = None):
        self.maxsize = maxsize
        self._items: deque[T] = deque()
        self._cond = wakes._cond if wakes is not None else threading.Condition()

    def put(self, item: T) -> None:
        with self._cond:
            if len(self._items) >= self.maxsize:
                raise Overloaded(f"The server is busy ({len(self._items)} requests queued); retry shortly.")
            self._items.append(item)
            self._cond.notify()

    def get(self, timeout: float | None = None) -> T | None:
        """The oldest item, or None after ``timeout`` seconds."""
        with self._cond:
            if not self._items:
                self._cond.wait(timeout)
            return self._items.popleft() if self._items else None

    def wake(self) -> None:
        """End the wait of a ``get`` now (it returns what there is, or None)."""
        with self._cond:
            self._cond.notify_all()

    def get_nowait(self) -> T | None:
        with self._cond:
            return self._items.popleft() if self._items else None

    def remove(self, item: T) -> bool:
        """Drop a job that was cancelled before it started."""
        with self._cond:
            for i, queued in enumerate(self._items):
                if queued is item:  # by identity: deque.remove compares field by field, and formats a missing item
                    del self._items[i]
                    return True
            return False

    def drain(self) -> list[T]:
        with self._cond:
            items = list(self._items)
            self._items.clear()
            return items

    def __len__(self) -> int:
        with self._cond:
            return len(self._items)

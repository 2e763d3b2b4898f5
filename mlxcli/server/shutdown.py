"""Shutdown hooks: what the server must flush or close once requests have stopped.

Whatever holds state for the server (the conversation store, ...) registers a
hook where it is created, in ``create_app``: ``ctx.shutdown.add(store.close)``.
``HttpServer.serve`` runs the hooks once, after in-flight requests have
finished or been cancelled, on SIGINT/SIGTERM and in tests alike.
"""

from __future__ import annotations

import logging
import threading
from typing import Callable

log = logging.getLogger("mlxcli.server")


class ShutdownHooks:
    def __init__(self) -> None:
        self._hooks: list[Callable[[], None]] = []
        self._lock = threading.Lock()
        self.ran = False

    def add(self, hook: Callable[[], None]) -> Callable[[], None]:
        """Register ``hook`` (usable as a decorator). Hooks run last-added first."""
        with self._lock:
            self._hooks.append(hook)
        return hook

    def run(self) -> None:
        """Run every hook once; a failing hook is logged and does not stop the others."""
        with self._lock:
            if self.ran:
                return
            self.ran = True
            hooks = list(reversed(self._hooks))
        for hook in hooks:
            try:
                hook()
            except Exception:
                log.exception("shutdown hook %r failed", hook)

    def __len__(self) -> int:
        return len(self._hooks)

"""Logging set-up: rich on a terminal, plain lines otherwise."""

from __future__ import annotations

import logging
import sys


def setup(level: str = "INFO") -> None:
    root = logging.getLogger()
    if getattr(root, "_mlxcli_configured", False):
        return
    if sys.stderr.isatty():
        from rich.logging import RichHandler

        handler: logging.Handler = RichHandler(show_path=False, rich_tracebacks=False)
        handler.setFormatter(logging.Formatter("%(message)s"))
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    root.setLevel(level.upper())
    root._mlxcli_configured = True  # type: ignore[attr-defined]
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)  # "task queue depth" noise

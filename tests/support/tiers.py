"""The slow tier, chosen when the tests are collected: `scripts/test --fast` runs everything else
(pytest -m "not slow"), the whole suite runs both.

A test is slow for what it reaches, read from the fixtures it uses, so that a new test lands in its tier by
itself; each reason is a marker too (`-m "not browser"` leaves one kind out). A test that runs mlxcli in a
subprocess says so itself: @pytest.mark.slow.
"""

from __future__ import annotations

import pytest

FIXTURES = {
    "browser": "browser",  # a headless Chromium (tests/ui)
    "launcher": "distributed",  # local ranks started with mlx.launch
    "tiny_vlm_dir": "vision",  # mlx-vlm
    "tiny_zimage_dir": "imagegen",  # mflux, a tiny Z-Image with the real VAE
}
MARKERS = {"slow", "default_model", *FIXTURES.values()}  # any of them puts a test in the slow tier


def reaches_the_default_model(item: pytest.Item) -> bool:
    """Whether the test, or a fixture it uses, asks for the default model's directory for more than its tokenizer
    (``tokenizer_dir``, which every scripted and tiny model is built on)."""
    info = getattr(item, "_fixtureinfo", None)  # a test function's; other items (doctests) use no fixtures
    if info is None:
        return False
    askers = {"the test": info.argnames, **{name: defs[-1].argnames for name, defs in info.name2fixturedefs.items()}}
    return any("default_model_dir" in argnames for name, argnames in askers.items() if name != "tokenizer_dir")


def mark(items: list[pytest.Item]) -> None:
    for item in items:
        reasons = {marker for fixture, marker in FIXTURES.items() if fixture in getattr(item, "fixturenames", ())}
        if reaches_the_default_model(item):
            reasons.add("default_model")
        for reason in reasons:
            item.add_marker(reason)
        if any(item.get_closest_marker(name) for name in MARKERS):
            item.add_marker("slow")

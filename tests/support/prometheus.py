"""Scrapes of /metrics, parsed by prometheus-client's own text parser."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families


def scrape(server, headers: dict[str, str] | None = None) -> dict[tuple[str, tuple], float]:
    """Every sample of a scrape: {(name, sorted labels): value}."""
    r = httpx.get(server.url + "/metrics", headers=headers, timeout=30)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(r.text)
        for sample in family.samples
    }


def value(samples, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def delta(before, after, name: str, **labels) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


def moved(before, after, name: str) -> dict[tuple, float]:
    """The series of ``name`` that moved between two scrapes, by their labels: how much."""
    changes = {labels: v - value(before, n, **dict(labels)) for (n, labels), v in after.items() if n == name}
    return {labels: change for labels, change in changes.items() if change}

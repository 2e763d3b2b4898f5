"""Medians, spreads and percentiles the reports are built from."""

from __future__ import annotations

import pytest

from mlxcli.bench.stats import percentile, ratio, summarize


def test_percentile_interpolates_between_ranks():
    values = [4.0, 1.0, 3.0, 2.0]  # order does not matter
    assert percentile(values, 0) == 1.0
    assert percentile(values, 50) == 2.5
    assert percentile(values, 100) == 4.0
    assert percentile(values, 95) == pytest.approx(3.85)
    assert percentile([7.0], 95) == 7.0


def test_summary_of_samples():
    s = summarize([10, 12, 11, None, float("nan")])  # missing and non-finite values are not samples
    assert (s.n, s.median, s.min, s.max, s.mean) == (3, 11, 10, 12, 11)
    assert s.stdev == pytest.approx(1.0)
    assert summarize([5]).stdev == 0.0


def test_summary_of_nothing_is_all_none():
    s = summarize([])
    assert s.n == 0 and s.median is None and s.p95 is None
    assert s.to_json() == {"n": 0, "median": None, "mean": None, "min": None, "max": None, "stdev": None, "p95": None}


def test_ratio():
    assert ratio(3.0, 2.0) == 1.5
    assert ratio(None, 2.0) is None and ratio(1.0, 0.0) is None and ratio(1.0, None) is None

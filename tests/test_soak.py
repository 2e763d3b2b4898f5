"""The soak's short version (the slow tier): three minutes of the mix against a real `mlxcli serve`, the crash leg
at 45 s, quiet points every 20 s. scripts/soak runs the long one (30 minutes; the README says what it checks).

Bounds are about growth and correctness, never speed, so that a loaded machine only makes the run slower: every
answer belongs to its request, every stream is well-formed, every disconnect frees its slot, refusals only in
bursts, nothing complete is lost to the crash, memory, caches, files and threads bounded. Three minutes are too
few to judge the 5 % RSS growth of the long run (the allocator still finds its high-water marks: steps of ~10 MB,
up to 5.6 % over the 90 s window in four runs at load 10): here the window may grow 15 %.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.soak.report import summary
from tests.support.soak.run import Config, run

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="the soak reads the server's memory, files and threads in /proc"),
]


def test_three_minutes_of_agent_traffic_stay_bounded_and_every_answer_is_its_own(test_home, tmp_path):
    config = Config(out=tmp_path / "soak", minutes=3, crash_at=0.75, warmup=0.25, quiet_every=20, burst_every=50,
                    swap_every=60, max_rss_growth=0.15, home=test_home)
    report = run(config)
    assert report["ok"], summary(report)
    assert {b["name"] for b in report["bounds"] if b["ok"] is None} == set(), summary(report)  # every bound measured
    crash = report["crash"]
    assert crash["completed_before_kill"] > 0 and crash["retrieved"] == crash["completed_before_kill"]
    assert {"truncated", "broken_header"} <= set(crash["damaged"])
    assert report["checked"]["answers"] > 100 and report["checked"]["streams"] > 50
    seen = set().union(*(m["scenarios"] for m in report["minutes_table"]))
    assert {"agent", "side", "disconnect", "structured", "embeddings", "image", "malformed", "burst", "swap"} <= seen
    assert all(b["refused"] >= 1 for b in report["bursts"]), report["bursts"]
    assert (config.out / "soak.png").stat().st_size > 0

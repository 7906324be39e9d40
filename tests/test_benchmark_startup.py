"""The start-up benchmark runs and reports what it promises (structure only, never timing)."""

from __future__ import annotations

import json

from benchmarks.startup import BASELINE, TARGETS
from conftest import run_benchmark


def test_startup_benchmark_quick_run(tmp_path):
    out = tmp_path / "startup.json"
    done = run_benchmark("benchmarks.startup", "--quick", "--json", str(out), timeout=600)
    result = json.loads(out.read_text())
    assert result["benchmark"] == "startup" and result["quick"] is True and result["repeats"] == 1
    assert result["baseline"] == BASELINE and result["parent_rss_mib"] > 0
    cases = result["cases"]
    assert BASELINE in cases and set(TARGETS) <= set(cases)
    assert cases[BASELINE]["ratio_to_baseline"] == 1.0
    for name, case in cases.items():
        assert case["median_s"] >= case["min_s"] > 0 and case["ratio_to_baseline"] > 0, name
        assert case["peak_rss_mib"] > 0 and case["target_ratio"] == TARGETS.get(name), name
        assert isinstance(case["within_target"], bool) == (name in TARGETS), name
        assert case["exit_status"] == ([2] if "argument error" in name else [0]) or name == "gapfill devices", name
        assert name in done.stdout

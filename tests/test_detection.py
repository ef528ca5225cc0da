"""``benchmarks/detection.py`` keeps its promises on a small run: every seed failure
detected within one evaluation interval past its check's hold, no false positive of
the library on the healthy scenarios, and its summary line in the promised shape.
(The full run, 100 seeds per healthy scenario, is in benchmarks/RESULTS.md.)"""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


def _benchmark():
    spec = importlib.util.spec_from_file_location("detection_benchmark", REPO / "benchmarks" / "detection.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("detection_benchmark", module)
    spec.loader.exec_module(module)
    return module


bench = _benchmark()


@pytest.mark.parametrize("name", ["dualog-db-cpu", "danaconnect-error-log-storm"])
def test_latency_is_measured_from_the_breach_held_in_the_data(name):
    run = bench.task(name, 3, "guardrail")
    assert run["outcome"] == "rolled_back"
    assert run["onset"] < run["ready"] <= run["decided_at"]
    assert 0 <= run["latency"] <= 30.0
    assert run["regions"] == ["r3"] and run["rolled_back_at"] == run["decided_at"]


def test_the_naive_policy_cries_wolf_where_the_library_does_not():
    assert bench.task("healthy-short-spikes", 5, "guardrail")["outcome"] == "promoted"
    naive = bench.task("healthy-short-spikes", 5, "naive")
    assert naive["outcome"] != "promoted" and naive["findings"][0].split()[1].startswith("naive-")


def test_a_small_run_prints_the_tables_and_the_summary_line(capsys):
    assert bench.main(["--failure-seeds", "2", "--healthy-runs", "3", "--jobs", "2"]) == 0
    out = capsys.readouterr().out
    lines = out.strip().splitlines()
    summary = re.fullmatch(r"detected (\d+)/(\d+) failures, false positives (\d+)/(\d+), "
                           r"median latency past hold (\d+)s", lines[-1])
    assert summary, lines[-1]
    detected, failures, positives, healthy, median = map(int, summary.groups())
    assert (detected, failures) == (14, 14)  # 5 seed failures and 2 later classes, 2 seeds each
    assert (positives, healthy) == (0, 15)
    assert "data gaps: wrong decisions 0/2" in out
    assert 0 <= median <= 30
    assert "every detection within one evaluation interval (30s) past its hold: yes" in out
    for heading in ("Failures, policy library", "Failures, naive policy", "The seed reports' own figures",
                    "Healthy scenarios, false positives", "The new failure classes", "Data gaps"):
        assert heading in out
    assert "4h45m" in out  # the R3 report's onset-to-detection, next to ours

"""The attack on "no traceback for a user's mistake", kept in CI.

Thousands of mutated plans and policies (tests/support/mutations.py: hostile values,
self-referential aliases, tags, deep nesting, alias bombs, control characters, broken
structure...) go through the library path of ``guardrail validate`` with a fixed seed.
Not one may raise, take more than 2 seconds of CPU (30 s of wall time is a hang), or
report a problem without a ``FILE:LINE:COL`` location. ``GUARDRAIL_FUZZ_RUNS=100000``
runs more (and ``GUARDRAIL_FUZZ_SEED`` another seed); benchmarks/fuzz_validate.py
reports the figures.
"""

from __future__ import annotations

import os
import time

from support.fuzz import campaign

RUNS = int(os.environ.get("GUARDRAIL_FUZZ_RUNS", "5000"))
SEED = int(os.environ.get("GUARDRAIL_FUZZ_SEED", "20261203"))


def test_mutated_plans_and_policies_never_crash_hang_or_lose_their_location(tmp_path):
    started = time.process_time()  # CPU time: other processes on a shared CI machine do not count
    result = campaign(tmp_path, RUNS, SEED)
    elapsed = time.process_time() - started
    report = "\n".join(map(str, (result.crashes + result.slow + result.unlocated)[:10]))
    assert result.runs == RUNS
    assert result.crashes == [], f"{len(result.crashes)} uncaught exceptions:\n{report}"
    assert result.slow == [], f"{len(result.slow)} runs over 2s:\n{report}"
    assert result.unlocated == [], f"{len(result.unlocated)} problems without a location:\n{report}"
    assert result.problems > RUNS // 2  # the mutants are broken: most report something
    if RUNS <= 5000:
        assert elapsed < 120, f"{RUNS} runs took {elapsed:.0f}s of CPU"

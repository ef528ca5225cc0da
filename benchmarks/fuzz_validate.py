"""The long fuzz run of ``guardrail validate`` (tests/test_fuzz_validate.py runs 5,000 on
every CI run): mutated plans and policies, and what it cost.

    python benchmarks/fuzz_validate.py --runs 100000 [--seed 20261203]

Prints the count, uncaught exceptions, runs over 2 s of CPU, problems without a location, the
CPU and wall time, the slowest file, the process's peak RSS, and the traced peak memory
of the 20 slowest mutants validated again one by one.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from support.fuzz import AnyEnv, REPO, campaign  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=20261203)
    args = parser.parse_args()
    from guardrail.language.loader import validate_paths
    from guardrail.plugin.manager import get_plugin_manager

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        wall, cpu = time.perf_counter(), time.process_time()
        result = campaign(work, args.runs, args.seed, keep_slowest=20)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        registry = get_plugin_manager().registry
        peaks = []
        for _, mutant in result.times:  # the slowest again, one at a time, memory traced
            target = work / mutant.source.relative_to(REPO)
            original = target.read_bytes()
            target.write_text(mutant.text, encoding="utf-8", errors="surrogatepass")
            tracemalloc.start()
            try:
                validate_paths([target], registry, environ=AnyEnv())
                peaks.append(tracemalloc.get_traced_memory()[1] / 2**20)
            finally:
                tracemalloc.stop()
                target.write_bytes(original)
    print(f"mutants validated:            {result.runs:,} (seed {args.seed})")
    print(f"problems reported:            {result.problems:,}")
    print(f"uncaught exceptions:          {len(result.crashes)}")
    print(f"runs over 2 s:                {len(result.slow)}")
    print(f"problems without a location:  {len(result.unlocated)}")
    print(f"time:                         {cpu:.0f} s CPU, {wall:.0f} s wall"
          f" ({cpu / result.runs * 1000:.1f} ms CPU per file)")
    print(f"slowest file:                 {result.slowest * 1000:.0f} ms wall (seed {result.slowest_seed}),"
          f" {result.slowest_cpu * 1000:.0f} ms CPU at most")
    print(f"peak RSS of the process:      {rss:.0f} MiB")
    print(f"traced peak, 20 slowest:      max {max(peaks):.1f} MiB, median {sorted(peaks)[len(peaks) // 2]:.1f} MiB")
    for finding in (result.crashes + result.slow + result.unlocated)[:20]:
        print("  ", finding)


if __name__ == "__main__":
    main()

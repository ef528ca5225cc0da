"""Run mutants (tests/support/mutations.py) through ``guardrail validate``'s library path
and collect what must never happen: an uncaught exception, a file that takes longer
than the limit, a problem without a location. Shared by tests/test_fuzz_validate.py
(a fixed seed on every CI run) and benchmarks/fuzz_validate.py (the long opt-in run)."""

from __future__ import annotations

import shutil
import signal
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from support.mutations import Mutant, mutants, sources

REPO = Path(__file__).resolve().parents[2]
FOLDERS = ("examples", "policies", "tests/data/valid")
HANG = 30.0
"""A mutant still validating after this long is reported as a hang instead of blocking CI."""


class AnyEnv(dict):
    """Every ``${env:NAME}`` reads as a placeholder URL: the examples' secrets are not set here."""

    def __contains__(self, name: object) -> bool:
        return True

    def __getitem__(self, name: str) -> str:
        return "http://127.0.0.1:9/placeholder"


@dataclass
class Finding:
    mutant: Mutant
    what: str

    def __str__(self) -> str:
        return (f"seed {self.mutant.seed} ({self.mutant.source.relative_to(REPO)}, "
                f"{'+'.join(self.mutant.operations)}): {self.what}")


@dataclass
class Campaign:
    runs: int = 0
    seconds: float = 0.0
    slowest: float = 0.0
    """The longest run, wall time."""
    slowest_seed: int | None = None
    slowest_cpu: float = 0.0
    """The longest run, CPU time: what the limit applies to (a shared CI machine can hold
    a process off the CPU for seconds; the hang alarm still bounds wall time)."""
    problems: int = 0
    crashes: list[Finding] = field(default_factory=list)
    slow: list[Finding] = field(default_factory=list)
    unlocated: list[Finding] = field(default_factory=list)
    times: list[tuple[float, Mutant]] = field(default_factory=list)


class _Hang(Exception):
    pass


def _alarm(signum, frame):  # noqa: ANN001 - signal handler
    raise _Hang()


def campaign(work: Path, count: int, seed: int, *, limit: float = 2.0, keep_slowest: int = 0) -> Campaign:
    """Validate ``count`` mutants in a copy of the repository's YAML folders under ``work``."""
    from guardrail.language.loader import validate_paths
    from guardrail.plugin.manager import get_plugin_manager

    for folder in FOLDERS:
        shutil.copytree(REPO / folder, work / folder, dirs_exist_ok=True)
    registry = get_plugin_manager().registry
    files = sources(REPO)
    environ = AnyEnv()
    result = Campaign()
    previous = signal.signal(signal.SIGALRM, _alarm)
    try:
        for mutant in mutants(files, count, seed):
            target = work / mutant.source.relative_to(REPO)
            original = target.read_bytes()
            target.write_text(mutant.text, encoding="utf-8", errors="surrogatepass")
            started, cpu = time.perf_counter(), time.process_time()
            signal.setitimer(signal.ITIMER_REAL, HANG)
            try:
                _, problems = validate_paths([target], registry, environ=environ)
                shown = [str(p) for p in problems]
            except _Hang:
                result.crashes.append(Finding(mutant, f"still running after {HANG:g}s"))
                problems, shown = [], []
            except Exception:  # noqa: BLE001 - what this campaign looks for
                result.crashes.append(Finding(mutant, traceback.format_exc(limit=-3)))
                problems, shown = [], []
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
                target.write_bytes(original)
            seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
            result.slowest_cpu = max(result.slowest_cpu, cpu)
            result.runs += 1
            result.seconds += seconds
            result.problems += len(problems)
            if seconds > result.slowest:
                result.slowest, result.slowest_seed = seconds, mutant.seed
            if keep_slowest:
                result.times.append((seconds, mutant))
                if len(result.times) > 4 * keep_slowest:
                    result.times = sorted(result.times, key=lambda t: -t[0])[:keep_slowest]
            if cpu > limit:
                result.slow.append(Finding(mutant, f"took {cpu:.2f}s of CPU ({seconds:.2f}s wall)"))
            for problem, text in zip(problems, shown):
                if not problem.file or problem.line < 1 or problem.column < 1 or "\n" in text:
                    result.unlocated.append(Finding(mutant, f"problem without a location: {text!r}"))
    finally:
        signal.signal(signal.SIGALRM, previous)
    result.times = sorted(result.times, key=lambda t: -t[0])[:keep_slowest]
    return result

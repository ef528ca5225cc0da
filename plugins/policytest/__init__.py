"""``kind: PolicyTest`` and ``guardrail test``: policy unit tests, in the spirit of ``promtool test rules``.

A built-in plugin: it registers the document kind (so ``guardrail validate`` checks test
files wherever they are, and ``guardrail schema policytest`` prints their schema) and the
``test`` command.

Why: a policy decides whether a release is rolled back, and until now the only way
to learn what it decides was a production incident (or a live cluster, with Argo
Rollouts' and Flagger's analyses). A test file gives input series for a few regions,
says when the change was deployed, and asserts what each check concludes; the answer
comes offline, in milliseconds, from the engine's own judge (``runner``)::

    apiVersion: guardrail/v1
    kind: PolicyTest
    policy: ../service-restarts.yaml          # relative to this file
    step: 15s                                 # inputs: one sample every 15s from t = 0
    tests:
      - name: restarts every 7 minutes fail the bake
        deployed_at: 1h                       # the baseline is the window before it
        until: 1h30m                          # last evaluation; default: end of the inputs
        regions:
          r3:                                 # region="r3" is added to every series
            series:
              'service_restarts_total{instance="r3-1"}': 0x260 1x28 2x28 3x28
              mail_sends_stalled: 0x360
            values: {}                        # a check's own values, bypassing its query
        expect:
          r3:
            service-restarts: {verdict: fail, first_failure: 1h5m30s}
            # every check not listed is expected to pass (as promtool fails on an
            # alert nobody listed)

Why raw series rather than the values each check would see: the query is the part
of a policy most likely to be wrong (a label that does not match, a rate window that
swallows the burst, a missing ``clamp_min``), and only evaluating it tests it. The
sim's PromQL evaluator follows Prometheus 2.x (lookback, ``rate`` extrapolation), so
a test means the same as a bake against Prometheus. A check that has no query (a
live ``tcp`` probe) or uses a function the evaluator lacks takes ``values:`` instead.

Two things a test author meets: a series has no samples before t = 0, so a rate over
its first minutes reads low, as Prometheus's does over a new series (start the
baseline window a rate window after t = 0 when it matters, as the library's
``mail-delivery`` tests do); and ``values:`` are read without lookback (the value at an
evaluation is the sample at or before it; ``_`` there is no data).

``run_paths`` is the whole command: load every file first (invalid files raise
``ConfigError``, exit 2, before anything runs), then run, then compare.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from guardrail import UsageError, hookimpl
from guardrail.language import documents
from guardrail_plugins.policytest.model import LoadedTest, PolicyTest, load_test, validate_document
from guardrail_plugins.policytest.notation import expand
from guardrail_plugins.policytest.report import Mismatch, compare, warnings
from guardrail_plugins.policytest.runner import Outcome, run_case


@dataclass
class FileResult:
    path: Path
    policy: Path
    tests: int = 0
    assertions: int = 0
    mismatches: list[Mismatch] = field(default_factory=list)
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)
    """Checks that warned, each a sentence (told apart: a warning never fails a wave)."""

    @property
    def ok(self) -> bool:
        return not self.mismatches


def find_test_files(paths: Iterable[str | Path]) -> list[Path]:
    """Files named, and in folders every YAML file of ``kind: PolicyTest`` or named
    ``*.test.yaml`` (so that a test file YAML cannot parse is an error, not skipped)."""
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            for candidate in sorted(path.rglob("*")):
                hidden = any(part.startswith(".") for part in candidate.relative_to(path).parts[:-1])
                if candidate.suffix in (".yaml", ".yml") and candidate.is_file() and not hidden and _is_test(candidate):
                    found.append(candidate)
        else:
            found.append(path)
    return found


def _is_test(path: Path) -> bool:
    if path.name.endswith((".test.yaml", ".test.yml")):
        return True
    data = documents.read(path).data
    return isinstance(data, dict) and data.get("kind") == "PolicyTest"


def run_loaded(loaded: LoadedTest) -> FileResult:
    started = time.perf_counter()
    result = FileResult(loaded.path, loaded.policy.path, tests=len(loaded.test.tests))
    for index, case in enumerate(loaded.test.tests):
        outcomes = run_case(loaded.test, case, loaded.policy.policy)
        count, mismatches = compare(loaded.doc, index, case, outcomes)
        result.assertions += count
        result.mismatches += mismatches
        result.warnings += warnings(case, outcomes)
    result.seconds = time.perf_counter() - started
    return result


def run_paths(paths: Iterable[str | Path], registry: Any) -> list[FileResult]:
    """Load every test file (``ConfigError`` with every problem of every file), then run them."""
    from guardrail.errors import ConfigError

    files = find_test_files(paths)
    if not files:
        raise UsageError("no PolicyTest files found (kind: PolicyTest)")
    loaded, problems = [], []
    for path in files:
        try:
            loaded.append(load_test(path, registry))
        except ConfigError as exc:
            problems += exc.problems
    if problems:
        raise ConfigError(problems)
    return [run_loaded(item) for item in loaded]


__all__ = ["FileResult", "LoadedTest", "Mismatch", "Outcome", "PolicyTest", "expand", "load_test", "run_case",
           "find_test_files", "run_loaded", "run_paths", "validate_document"]


@hookimpl(trylast=True)
def guardrail_register_document_kinds(register):
    register("PolicyTest", validate_document, schema=PolicyTest)


@hookimpl(trylast=True)
def guardrail_register_commands(app):
    from .command import policy_test

    app.command("test")(policy_test)

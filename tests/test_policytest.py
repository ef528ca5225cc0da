"""``guardrail test``: the notation, located errors, the runner (the engine's own judge,
cross-checked against a simulated rollout), the diff, and the library's own tests."""

from __future__ import annotations

import importlib.util
import math
import sys
import textwrap
import time
from pathlib import Path

import pytest

from guardrail.rollout import ticks
from guardrail.errors import ConfigError
from guardrail_plugins.policytest import find_test_files, load_test, run_loaded, run_paths
from guardrail_plugins.policytest import runner
from guardrail_plugins.policytest.model import PolicyTest
from guardrail_plugins.policytest.notation import MAX_SAMPLES, compact, expand

REPO = Path(__file__).resolve().parents[1]
POLICIES = REPO / "policies"

RESTARTS_POLICY = """
apiVersion: guardrail/v1
kind: Policy
name: restarts
interval: 30s
on_no_data: inconclusive
checks:
  - name: restarts
    source: prometheus
    query: sum(increase(service_restarts_total{region="{{region}}"}[15m]))
    fail_if: "> 1.5"
  - name: stalled
    source: prometheus
    query: sum(mail_sends_stalled{region="{{region}}"})
    fail_if: "> 0"
    for: 2m
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip())
    return path


def a_test(tmp_path: Path, body: str) -> Path:
    write(tmp_path, "policy.yaml", RESTARTS_POLICY)
    return write(tmp_path, "policy.test.yaml", "apiVersion: guardrail/v1\nkind: PolicyTest\npolicy: policy.yaml\n"
                 "step: 15s\n" + textwrap.dedent(body).lstrip())


# --- notation ---------------------------------------------------------------------------


def test_notation_follows_promtool():
    assert expand("0+1x3") == [0, 1, 2, 3]  # a+bxn: n+1 samples
    assert expand("10-2x2") == [10, 8, 6]
    assert expand("5x2 _x3 5") == [5, 5, 5, None, None, None, 5]
    assert expand("_ 1e3 -2.5 .5") == [None, 1000, -2.5, 0.5]
    assert expand("Inf -Inf")[0] == math.inf and math.isnan(expand("NaN")[0])
    assert expand(7) == [7.0]
    assert compact(expand("5x20 _x3 5x10")) == "5x20 _x3 5x10"


@pytest.mark.parametrize("text, message", [
    ("", "empty series"),
    ("1 2 x", "token 3 'x'"),
    ("stale", "staleness markers are not supported"),
    ("1+x3", "token 1"),
    (f"0x{MAX_SAMPLES}", "longer than"),
    (True, "expected series notation"),
])
def test_notation_errors_name_the_token(text, message):
    with pytest.raises(ValueError, match=message):
        expand(text)


# --- documents --------------------------------------------------------------------------


def test_validate_locates_every_problem(tmp_path, cli):
    path = a_test(tmp_path, """
        tests:
          - name: broken
            deployed_at: 1h
            until: 30m
            regions:
              r3:
                series:
                  'x{a=~"b"}': 1x10
                  up: 1 2 oops
                values:
                  restart: 1x10
            control: [r9]
            expect:
              r3:
                restarts: {verdict: pass, first_failure: 1h}
                stalld: fail
              r4: {restarts: fail}
    """)
    result = cli("validate", str(path))
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if "policy.test.yaml" in line]
    expected = [
        ":8:12: tests[0].until: must not be before deployed_at",
        ":12:11: tests[0].regions.r3.series.x{a=~\"b\"}: 'x{a=~\"b\"}': a series has exact labels (=), not =~",
        ":13:15: tests[0].regions.r3.series.up: token 3 'oops'",
        ":15:11: tests[0].regions.r3.values.restart: the policy under test has no check 'restart' (did you mean 'restarts'?)",
        ":16:15: tests[0].control[0]: control region 'r9' has no inputs under regions:",
        ":19:50: tests[0].expect.r3.restarts.first_failure: only a check expected to fail has a first failure",
        ":20:9: tests[0].expect.r3.stalld: the policy under test has no check 'stalld' (did you mean 'stalled'?)",
        ":21:7: tests[0].expect.r4: region 'r4' has no inputs under regions:",
    ]
    assert len(lines) == len(expected), "\n".join(lines)
    for fragment in expected:
        assert any(fragment in line for line in lines), f"{fragment!r} not in:\n" + "\n".join(lines)


def test_a_missing_policy_and_a_check_without_query_are_reported(tmp_path, registry):
    path = write(tmp_path, "t.test.yaml", """
        apiVersion: guardrail/v1
        kind: PolicyTest
        policy: nowhere.yaml
        tests: [{name: a, deployed_at: 0s, regions: {r3: {series: {up: 1x3}}}}]
    """)
    with pytest.raises(ConfigError, match="policy file not found"):
        load_test(path, registry)
    write(tmp_path, "tcp.yaml", (POLICIES / "smtp-reachability.yaml").read_text())
    path.write_text(path.read_text().replace("nowhere.yaml", "tcp.yaml"))
    with pytest.raises(ConfigError, match="'smtp-port-25' has no query to evaluate: give what it reads under values"):
        load_test(path, registry)


def test_notation_that_yaml_reads_as_a_number_is_read_as_notation(tmp_path, registry):
    """``0x30`` is the hex integer 48 to YAML, ``1_0`` is 10: both are notation here."""
    path = a_test(tmp_path, """
        tests:
          - name: hex
            deployed_at: 0s
            regions: {r3: {series: {mail_sends_stalled: 0x30, service_restarts_total: 0}}}
    """)
    case = load_test(path, registry).test.tests[0]
    assert case.regions["r3"].series == {"mail_sends_stalled": "0x30", "service_restarts_total": "0"}
    path.write_text(path.read_text().replace("service_restarts_total: 0", "service_restarts_total: 1_0"))
    with pytest.raises(ConfigError, match="token 1 '1_0'"):
        load_test(path, registry)  # a typo in it is a located error, not the number 10


# --- the runner -------------------------------------------------------------------------


def test_the_runner_judges_with_the_engines_judge():
    assert runner.judge_check is ticks.judge_check  # the one judgement (guardrail.judging.evaluate)


def _library():
    spec = importlib.util.spec_from_file_location("scenario_library", REPO / "examples" / "scenarios" / "run.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("scenario_library", module)
    spec.loader.exec_module(module)
    return module


def test_a_policy_test_over_a_scenarios_samples_fails_when_the_rollout_did(tmp_path, registry):
    """The cross-check: the samples a simulated rollout's checks read, written out as a
    test's inputs, give the test's runner the rollout's first failure, to the tick."""
    lib = _library()
    run = lib.run("r3-sender-restarts", workdir=tmp_path / "run")
    store = lib.store_of(run, before=run.decided_at)
    origin = store.history_start_ms / 1000.0
    series = {}
    for index, spec in enumerate(store.specs):
        if spec.region != "r3" or spec.metric not in ("service_restarts_total", "mail_sends_stalled"):
            continue
        data = store.series(index, run.start + 1800)
        values = [v for t, v in zip(data.ts, data.vals) if t / 1000.0 <= run.start + 1800]
        assert data.ts[0] / 1000.0 == origin and len(values) == int((run.start + 1800 - origin) / 15) + 1
        labels = ", ".join(f'{k}="{v}"' for k, v in spec.labels.items() if k not in ("__name__", "region"))
        series[f"{spec.metric}{{{labels}}}"] = " ".join(repr(v) for v in values)
    test = PolicyTest.model_validate({
        "apiVersion": "guardrail/v1", "kind": "PolicyTest", "policy": "x", "step": "15s",
        "tests": [{"name": "replay", "deployed_at": f"{int(run.start - origin)}s",
                   "until": f"{int(run.start + 1800 - origin)}s", "regions": {"r3": {"series": series}}}]})
    from guardrail.language.loader import load_policy

    policy = load_policy(POLICIES / "service-restarts.yaml", registry).policy
    outcomes = runner.run_case(test, test.tests[0], policy)
    finding = run.findings[0]
    assert finding["check"] == "mail-process-restarts"  # the composite's copy of service-restarts
    got = outcomes[("r3", "service-restarts")]
    assert (got.verdict, origin + got.at) == ("fail", run.decided_at)


def test_each_check_runs_until_its_own_first_failure(tmp_path, registry):
    path = a_test(tmp_path, """
        tests:
          - name: both fail
            deployed_at: 10m
            until: 40m
            regions:
              r3:
                series:
                  service_restarts_total: 0x59 1x19 2x100
                  mail_sends_stalled: 0x49 3x150
    """)
    loaded = load_test(path, registry)
    outcomes = runner.run_case(loaded.test, loaded.test.tests[0], loaded.policy.policy)
    restarts, stalled = outcomes[("r3", "restarts")], outcomes[("r3", "stalled")]
    assert (stalled.verdict, stalled.at) == ("fail", 14.5 * 60)  # breaching from 12m30s, held 2m
    assert (restarts.verdict, restarts.at) == ("fail", 20 * 60)
    assert restarts.ticks[-1].at == 20 * 60 and len(restarts.ticks) == 21  # stopped at its failure
    assert stalled.ticks[-2].pending and stalled.ticks[-2].reason.endswith("breaching for 1m30s of its 2m hold")


def test_checks_without_query_take_values_and_templates_need_vars(tmp_path, registry):
    write(tmp_path, "tcp.yaml", (POLICIES / "smtp-reachability.yaml").read_text())
    path = write(tmp_path, "tcp.test.yaml", """
        apiVersion: guardrail/v1
        kind: PolicyTest
        policy: tcp.yaml
        tests:
          - name: values
            deployed_at: 0s
            regions: {r3: {values: {smtp-port-25: 1x3 0.5x3}}}
            expect: {r3: {smtp-port-25: {verdict: fail, first_failure: 1m}}}
    """)
    [result] = run_paths([path], registry)
    assert result.ok, [m.render() for m in result.mismatches]


def test_compare_control_uses_the_control_regions(tmp_path, registry):
    write(tmp_path, "control.yaml", """
        apiVersion: guardrail/v1
        kind: Policy
        name: control
        interval: 30s
        on_no_data: inconclusive
        checks:
          - name: delivery-vs-control
            source: prometheus
            query: sum(mail_delivered{region="{{region}}"})
            compare: control
            direction: decrease
            effect_size: 0.9
            min_samples: 10
    """)
    path = write(tmp_path, "control.test.yaml", """
        apiVersion: guardrail/v1
        kind: PolicyTest
        policy: control.yaml
        step: 30s
        tests:
          - name: a drop against the waiting region fails
            deployed_at: 10m
            until: 30m
            control: [r1]
            regions:
              r3: {series: {mail_delivered: 100-0.01x19 60+0.01x40}}
              r1: {series: {mail_delivered: 100+0.01x60}}
            expect: {r3: {delivery-vs-control: {verdict: fail, first_failure: 14m30s}}}
          - name: with nothing left waiting the region's own window before the change judges it
            deployed_at: 10m
            until: 30m
            regions:
              r3: {series: {mail_delivered: 100x19 60x40}}
            expect: {r3: {delivery-vs-control: {verdict: fail, first_failure: 14m30s}}}
    """)
    [result] = run_paths([path], registry)
    assert result.ok, "\n".join(m.render() for m in result.mismatches)


# --- the command line -------------------------------------------------------------------


def test_guardrail_test_passes_the_policy_library(cli):
    started = time.process_time()  # CPU time: what a loaded machine does not stretch
    result = cli("test", "policies/")
    assert result.exit_code == 0, result.output
    assert time.process_time() - started < 10
    assert "passed: 7 files" in result.output


def test_every_policy_ships_with_a_test_file():
    tested = {p.name.removesuffix(".test.yaml") for p in find_test_files([POLICIES])}
    assert tested == {p.stem for p in POLICIES.glob("*.yaml")}


def test_a_mismatch_exits_1_with_a_readable_diff(tmp_path, cli):
    path = a_test(tmp_path, """
        tests:
          - name: restarts
            deployed_at: 10m
            until: 30m
            regions:
              r3:
                series:
                  service_restarts_total: 0x59 1x19 2x100
                  mail_sends_stalled: 0x200
            expect:
              r3:
                restarts: {verdict: fail, first_failure: 19m}
          - name: quiet
            deployed_at: 10m
            regions:
              r3:
                series:
                  service_restarts_total: 0x100
                  mail_sends_stalled: 0x59 1x40
    """)
    result = cli("test", str(path))
    assert result.exit_code == 1, result.output
    out = result.output
    assert "policy.test.yaml:16:19: 'restarts': r3/restarts" in out
    assert "  expected: fail, first failure at 19m (9m after the deploy)" in out
    assert "  got:      fail, first failure at 20m (10m after the deploy)" in out
    assert "evaluations around 19m, the first divergence:" in out
    assert "    >    19m      1        1.5  pass\n" in out
    assert "         20m      2        1.5  fail     2 (fails if > 1.5)\n" in out
    assert "policy.test.yaml:20:7: 'quiet': r3/stalled" in out  # expected to pass by not being listed
    assert "  expected: pass\n  got:      fail, first failure at 17m (7m after the deploy)" in out
    assert "breaching for 1m30s of its 2m hold" in out
    assert "FAIL  " in out and "2 assertions failed in 1 of 1 file, 4 assertions" in out


def test_invalid_files_exit_2_before_anything_runs(tmp_path, cli):
    path = a_test(tmp_path, "tests: [{name: x, deployed_at: soon, regions: {r3: {series: {up: 1}}}}]\n")
    result = cli("test", str(path), "policies/tests/db-cpu.test.yaml")
    assert result.exit_code == 2, result.output
    assert "policy.test.yaml:5:32: tests[0].deployed_at: expected a duration" in result.output
    assert "ok " not in result.output
    empty = tmp_path / "empty"
    empty.mkdir()
    result = cli("test", str(empty))
    assert result.exit_code == 2 and "no PolicyTest files found" in result.output


def test_a_broken_test_file_in_a_folder_is_an_error_not_skipped(tmp_path, cli):
    (tmp_path / "x.test.yaml").write_text("apiVersion: guardrail/v1\nkind: PolicyTest\npolicy: [\n")
    result = cli("test", str(tmp_path))
    assert result.exit_code == 2 and "x.test.yaml:4:1: YAML syntax error" in result.output


def test_run_loaded_is_fast(registry):
    loaded = load_test(POLICIES / "tests" / "service-restarts.test.yaml", registry)
    started = time.process_time()  # CPU time: what a loaded machine does not stretch
    result = run_loaded(loaded)
    assert result.ok and time.process_time() - started < 1.0

"""The warning tier: ``warn_if`` beside ``fail_if``, and checks marked ``mode: warn``.

A warning is judged like a failure (the one judgement, ``for:`` included), recorded,
told (status, report, JSON, ``notify:``) and never decides: it fails no wave, halts
none and holds no bake, and a warn-only check's missing evidence halts nothing either.
Through the judge, the language, a rollout on the simulated fleet, ``guardrail test``,
``guardrail backtest`` and ``guardrail check``.
"""

from __future__ import annotations

import json
from contextlib import closing
from pathlib import Path

import jsonschema
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from guardrail.errors import ConfigError
from guardrail.judging.evaluate import judge_check, judge_once
from guardrail.judging.judge import CheckState
from guardrail.language.loader import load_policy
from guardrail.plugin.manager import get_plugin_manager
from guardrail.plugin.readings import Reading
from guardrail.rollout.ticks import _restore
from guardrail.state.sqlite import SQLiteStore
from guardrail.text import delta, hold_text
from guardrail.tools.backtest import backtest
from support.engine_plans import rollout, run, state, work, write_plan, write_policy  # noqa: F401
from support.fakes import FakeReceiver

MINUTE = 60.0


def _policy(tmp: Path, *checks: dict, name: str = "p", **settings) -> Path:
    doc = {"apiVersion": "guardrail/v1", "kind": "Policy", "name": name, "interval": "30s", **settings,
           "checks": list(checks)}
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def _check(tmp: Path, **fields):
    spec = {"name": "c", "source": "prometheus", "query": "m", **fields}
    return load_policy(_policy(tmp, spec), get_plugin_manager(autoload=False).registry).policy.checks[0]


def _judge(check, values, interval=30.0):
    """(status, pending, reason) of each evaluation of ``values`` (None: a source error)."""
    state, out = CheckState(), []
    for i, value in enumerate(values):
        reading = Reading.failed("down") if value is None else Reading.of(value)
        verdict, state, _ = judge_check(check, at=i * interval, state=state, on_no_data="inconclusive",
                                        reading=reading)
        out.append((verdict.status, verdict.pending, verdict.reason, state))
    return out


# -- the judge ------------------------------------------------------------------------


def test_two_tiers_each_hold_their_own_for_and_the_failure_decides(tmp_path):
    check = _check(tmp_path, fail_if="> 0.5", warn_if="> 0.2", **{"for": "1m"})
    got = _judge(check, [0.1, 0.3, 0.3, 0.3, 0.6, 0.6, 0.6, 0.3, 0.1])
    assert [(s, p) for s, p, _, _ in got] == [
        ("pass", False), ("pass", False), ("pass", False),  # the warning's hold fills: 0s, 30s of 1m
        ("warn", False),  # held 1m: a warning
        ("warn", True), ("warn", True),  # the failure's hold fills while it warns: the bake waits
        ("fail", False),  # the failure held 1m: it decides
        ("warn", False), ("pass", False)]
    assert "0.3 (warns if > 0.2); held 1m" == got[3][2]
    assert got[4][2].endswith("breaching for 0s of its 1m hold")
    assert got[6][2] == "0.6 (fails if > 0.5); held 1m"
    assert got[3][3].warning.breach_since == 30.0 and got[3][3].breach_since is None


def test_a_warn_only_check_never_fails_holds_or_counts_toward_the_inconclusive_limit(tmp_path):
    check = _check(tmp_path, fail_if="> 0.5", mode="warn", **{"for": "1m"})
    got = _judge(check, [0.9, 0.9, 0.9, None, None, None, None, 0.1])
    assert [s for s, *_ in got] == ["pass", "pass", "warn", "inconclusive", "inconclusive", "inconclusive",
                                    "inconclusive", "pass"]
    assert not any(p for _, p, _, _ in got)  # a warning's hold holds no bake
    assert got[1][2] == "0.9 (warns if > 0.5); breaching for 30s of its 1m hold"
    assert all(state.inconclusive_streak == 0 for *_, state in got)
    # check (one evaluation, no hold): a warning, and what a bake would wait for
    verdict, _ = judge_once(check, at=0.0, on_no_data="inconclusive", reading=Reading.of(0.9))
    assert verdict.status == "warn" and "a bake warns once it holds for 1m" in verdict.reason


def test_the_warning_tier_survives_a_resume(tmp_path):
    check = _check(tmp_path, fail_if="> 0.5", warn_if="> 0.2", **{"for": "1m"})
    *_, state = _judge(check, [0.3, 0.3])[-1]
    row = {"status": "pass", "value": 0.3, "threshold": 0.5, "reference": None, "reason": "", "pending": 0,
           "evidence": {"warning_since": state.warning.breach_since}, "breach_since": None,
           "first_breach_at": None, "streak": 0, "evaluations": 2, "failures": 0, "inconclusives": 0}
    restored = _restore(row)
    verdict, _, _ = judge_check(check, at=60.0, state=restored, on_no_data="inconclusive", reading=Reading.of(0.3))
    assert verdict.status == "warn"  # held since 0s, across the resume


def test_deltas_and_holds_read_as_people_read_them():
    assert delta(0.3666 - 0.4071) == "-0.0405"
    assert delta(209.99999, percent=True) == "+210%" and delta(-9.948, percent=True) == "-9.948%"
    assert hold_text(120, 300) == "breaching for 2m of its 5m hold"
    assert hold_text(120, 300, recovered=True) == "breached 2m of its 5m hold, then recovered"


def test_a_baseline_delta_shows_the_difference(tmp_path):
    check = _check(tmp_path, fail_if="< -0.01", compare="baseline")
    verdict, _, _ = judge_check(check, at=0.0, state=CheckState(), on_no_data="inconclusive",
                                reading=Reading.of(0.3666), reference=0.4071)
    assert verdict.reason == "0.3666 is -0.0405 from baseline 0.4071 (fails if < -0.01)"


# -- the language ---------------------------------------------------------------------


@pytest.mark.parametrize("fields, message", [
    ({"fail_if": "> 0.5", "warn_if": "> 0.2", "mode": "warn"}, "a check with mode: warn only warns"),
    ({"fail_if": "> 0.5", "warn_if": "> 0.7"}, "would not warn before fail_if '> 0.5' fails"),
    ({"fail_if": "> 0.5", "warn_if": "> 0.5"}, "would not warn before"),
    ({"fail_if": "< 0.5", "warn_if": "< 0.2"}, "would not warn before"),
    ({"fail_if": "> 0.5", "warn_if": "< 0.2"}, "point in opposite directions"),
    ({"fail_if": "== 0", "warn_if": "> 0"}, "needs >, >=, < or <= on both"),
    ({"fail_if": "> +50%", "warn_if": "> 5", "compare": "baseline"}, "must be alike"),
    ({"fail_if": "> 5", "warn_if": "> +20%"}, "is relative"),
    ({"compare": "control", "warn_if": "> 1"}, "mark the check mode: warn"),
])
def test_a_warning_that_does_not_fit_is_refused_at_its_line(tmp_path, fields, message):
    path = _policy(tmp_path, {"name": "c", "source": "prometheus", "query": "m", **fields})
    result = run("validate", path)
    assert result.exit_code == 2, result.output
    assert f"{path.name}:" in result.output and message in " ".join(result.output.split()), result.output
    assert "Traceback" not in result.output


@settings(max_examples=300, deadline=None)
@given(ops=st.tuples(*[st.sampled_from([">", ">=", "<", "<="])] * 2), numbers=st.tuples(*[st.integers(-3, 3)] * 2))
def test_an_accepted_warning_always_comes_before_the_failure(ops, numbers):
    """Whatever ``warn_if`` the language accepts holds wherever ``fail_if`` holds, and
    somewhere it alone does: a warning can come first, and never comes after."""
    from pydantic import ValidationError

    from guardrail.language.model import Check

    warn, fail = f"{ops[0]} {numbers[0]}", f"{ops[1]} {numbers[1]}"
    try:
        check = Check.model_validate({"name": "c", "source": "prometheus", "fail_if": fail, "warn_if": warn})
    except ValidationError:
        return
    values = [n / 2 for n in range(-10, 11)]
    assert all(check.warn_if.holds(v) for v in values if check.fail_if.holds(v)), (warn, fail)
    assert any(check.warn_if.holds(v) and not check.fail_if.holds(v) for v in values), (warn, fail)


def test_warnings_that_fit(tmp_path):
    assert _check(tmp_path, fail_if="> 0.5", warn_if=">= 0.5").warn_if.text == ">= 0.5"
    assert _check(tmp_path, fail_if="< 0.5", warn_if="< 0.7").warn_if.text == "< 0.7"
    alone = _check(tmp_path, warn_if="> 0.2")  # only a warning condition: a warn-only check
    assert alone.advisory and alone.fail_if.text == "> 0.2" and alone.warn_if is None
    assert _check(tmp_path, compare="control", mode="warn").advisory


def test_a_warning_beside_a_failure_a_source_implies_still_fails(tmp_path):
    """``min_success_ratio`` implies ``fail_if``: a ``warn_if`` beside it adds a warning,
    never turns the check into a warn-only one."""
    spec = {"name": "reach", "source": "tcp", "targets": ["127.0.0.1:1"], "min_success_ratio": 0.5,
            "warn_if": "< 0.9"}
    check = load_policy(_policy(tmp_path, spec), get_plugin_manager(autoload=False).registry).policy.checks[0]
    assert not check.advisory and check.fail_if.text == "< 0.5" and check.warn_if.text == "< 0.9"
    spec["warn_if"] = "< 0.2"
    with pytest.raises(ConfigError, match="would not warn before"):
        load_policy(_policy(tmp_path, spec), get_plugin_manager(autoload=False).registry)


# -- a rollout on the simulated fleet -------------------------------------------------


@pytest.fixture
def hook():
    with FakeReceiver(secret="s3cr3t") as fake:
        yield fake


def _schema_errors(doc: dict) -> list[str]:
    result = run("schema", "output")
    validator = jsonschema.Draft202012Validator(json.loads(result.stdout))
    return [e.message for e in validator.iter_errors(doc)]


def test_a_warning_is_recorded_told_and_never_fails_the_rollout(work, state, hook):  # noqa: F811
    # 2.1-bad: errors at 0.9 from 5m after each deploy; fails only above 0.95, warns above 0.5
    policy = write_policy(work, "errors", "errors-warned",
                          checks=[{"name": "errors", "source": "prometheus",
                                   "query": 'max(errors_ratio{region="{{region}}"})',
                                   "fail_if": "> 0.95", "warn_if": "> 0.5", "for": "1m"}])
    plan = write_plan(work, "warned", change={"version": "2.1-bad"}, policies=[policy],
                      notify=[{"plugin": "webhook", "with": {"url": hook.hook_url, "secret": "s3cr3t"},
                               "events": ["warning", "done"]}])
    doc = rollout(plan, state, 0)
    assert doc["outcome"] == "promoted" and not doc["failing_checks"]
    assert not _schema_errors(doc)
    warned = {(w["wave"], w["region"]): w for w in doc["warnings"]}
    # r3 warns in the bake of each wave: a region of an earlier wave bakes again with each later one
    assert set(warned) == {("canary", "r3"), ("main", "r3"), ("main", "r1"), ("main", "r2")}
    assert warned[("canary", "r3")]["reason"] == "0.9 (warns if > 0.5); held 1m"
    assert warned[("canary", "r3")]["threshold"] == 0.5 and warned[("canary", "r3")]["times"] == 1

    with closing(SQLiteStore(state)) as store:
        events = store.events(doc["rollout_id"], "check.warned")
        rows = store.measurements(doc["rollout_id"], "bake:canary")
    assert [(e["wave"], e["region"]) for e in events] == [("canary", "r3"), ("main", "r3"), ("main", "r1"),
                                                           ("main", "r2")]
    first = next(r for r in rows if r["status"] == "warn")
    assert first["at"] - rows[0]["at"] == pytest.approx(6 * MINUTE)  # 5m to the errors, 1m held
    assert first["evidence"]["warning_since"] == pytest.approx(first["at"] - MINUTE)

    announced = [b["notification"] for b in hook.received if b["event"] == "rollout.warning"]
    assert [n["regions"] for n in announced] == [["r3"], ["r3"], ["r1"], ["r2"]]
    assert "warning in wave canary: r3/errors/errors: 0.9 (warns if > 0.5)" in announced[0]["text"]
    assert [b["event"] for b in hook.received][-1] == "rollout.done"

    status = run("status", doc["rollout_id"], "--state", state)
    assert status.exit_code == 0, status.output
    assert "r3 errors (warning, never failing): 0.9 (warns if > 0.5); held 1m" in " ".join(status.output.split())
    status_json = json.loads(run("status", doc["rollout_id"], "--state", state, "--json").stdout)
    assert status_json["warnings"] == doc["warnings"] and not _schema_errors({"command": "status", "exit_code": 0,
                                                                              **status_json})

    html = work / "report.html"
    report = run("report", doc["rollout_id"], "--state", state, "--html", html)
    assert report.exit_code == 0, report.output
    page = html.read_text()
    assert "Warnings (they never fail a wave)" in page and 'data-status="warn"' in page
    assert "warns if <code>&gt; 0.5</code>" in page

    from guardrail.report.data import gather
    from guardrail.report.github import step_summary

    with closing(SQLiteStore(state)) as store:
        summary = step_summary(gather(store, doc["rollout_id"]))
    assert "### Warnings (never failing)" in summary
    assert "- r3 errors/errors (wave canary, from " in summary and "warn" in summary.split("### Checks")[1]


def test_a_warn_only_check_without_evidence_halts_nothing(work, state):  # noqa: F811
    # 2.4-silent: the heartbeat stops 2m after each deploy; as a failing check this halts
    halting = write_plan(work, "silent", change={"version": "2.4-silent"}, policies=["../policies/heartbeat.yaml"])
    rollout(halting, state, 3)
    quiet = write_policy(work, "heartbeat", "heartbeat-warn",
                         checks=[{"name": "heartbeat", "source": "prometheus",
                                  "query": 'last_over_time(heartbeat{region="{{region}}"}[30s])',
                                  "fail_if": "< 0", "mode": "warn"}])
    errors = "../policies/errors.yaml"
    plan = write_plan(work, "silent-warned", service="silent-svc", change={"version": "2.4-silent"},
                      policies=[quiet, errors])
    doc = rollout(plan, state, 0)
    assert doc["outcome"] == "promoted"
    with closing(SQLiteStore(state)) as store:
        rows = [r for r in store.measurements(doc["rollout_id"], "bake:canary") if r["check"] == "heartbeat"]
    assert rows[-1]["status"] == "inconclusive" and {r["streak"] for r in rows} == {0}
    # it owes no covered bake time: status does not list it as short of evidence
    status = json.loads(run("status", doc["rollout_id"], "--state", state, "--json").stdout)
    coverage = {c["check"]: c for w in status["waves"] for r in w["regions"] for c in r["coverage"]}
    assert coverage["heartbeat/heartbeat"]["applies"] is False and coverage["heartbeat/heartbeat"]["complete"]
    assert coverage["errors/errors"]["applies"] is True
    text = run("status", doc["rollout_id"], "--state", state).output
    assert "heartbeat" not in text, text


# -- guardrail test, backtest and check ------------------------------------------------


def test_guardrail_test_reports_warnings_apart(tmp_path):
    _policy(tmp_path, {"name": "latency", "source": "prometheus", "query": 'max(latency{region="{{region}}"})',
                       "fail_if": "> 10", "warn_if": "> 5", "for": "30s"}, name="latency")
    spec = {"apiVersion": "guardrail/v1", "kind": "PolicyTest", "policy": "latency.yaml", "step": "30s",
            "tests": [{"name": "slow but not failing", "deployed_at": "1m",
                       "regions": {"r3": {"series": {"latency": "1 1 1 6 6 6 1"}}},
                       "expect": {"r3": {"latency": {"verdict": "warn", "first_warning": "2m"}}}}]}
    (tmp_path / "latency.test.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    result = run("test", tmp_path / "latency.test.yaml")
    assert result.exit_code == 0, result.output
    assert "warning 'slow but not failing': r3/latency warned at 2m" in result.output
    doc = json.loads(run("test", tmp_path / "latency.test.yaml", "--json").stdout)
    assert doc["files"][0]["warnings"] == ["'slow but not failing': r3/latency warned at 2m"]
    assert not _schema_errors(doc)

    spec["tests"][0]["expect"] = {}  # expected to pass: a warning is a verdict of its own
    (tmp_path / "latency.test.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    result = run("test", tmp_path / "latency.test.yaml")
    assert result.exit_code == 1
    assert "got:      warn, first warning at 2m (1m after the deploy)" in result.output, result.output
    assert "breaching" in result.output and "(pending)" not in result.output


def test_backtest_and_check_report_warnings_apart(work, state):  # noqa: F811
    policy = work / "policies" / "errors-warned.yaml"
    policy.write_text(yaml.safe_dump({
        "apiVersion": "guardrail/v1", "kind": "Policy", "name": "errors-warned", "interval": "30s",
        "checks": [{"name": "errors", "source": "prometheus", "query": 'max(errors_ratio{region="{{region}}"})',
                    "fail_if": "> 0.95", "warn_if": "> 0.5", "for": "1m"},
                   {"name": "latency", "source": "prometheus", "query": 'max(latency_seconds{region="{{region}}"})',
                    "fail_if": "> 10", "for": "10m"}]}, sort_keys=False))
    plan = write_plan(work, "history", change={"version": "2.1-bad"},
                      waves=[{"name": "canary", "regions": ["r3"], "bake": "30m"}],
                      policies=["../policies/errors-warned.yaml"])
    doc = rollout(plan, state, 0)  # the history: r3 on 2.1-bad from the rollout's start, for good
    deployed = json.loads(run("status", doc["rollout_id"], "--state", state, "--json").stdout)
    from datetime import datetime

    at = datetime.fromisoformat(deployed["waves"][0]["regions"][0]["deployed_at"].replace("Z", "+00:00")).timestamp()
    sources = {"prometheus": {"plugin": "sim", "scenario": str(work / "scenarios" / "fleet.yaml"),
                              "fleet": str(state.parent / "sim-fleet-engine-test.jsonl")}}
    result = backtest([policy], region="r3", deployed_at=at, until=at + 10 * MINUTE, sources=sources)
    assert result.outcome == "pass", result.reason
    [errors] = result.warnings
    assert errors.check == "errors" and errors.warned_at - at == pytest.approx(6 * MINUTE)
    assert errors.warnings == 9  # 6m to 10m, every 30s
    assert result.as_dict()["warnings"][0]["check"] == "errors"
    assert not _schema_errors({"command": "backtest", **result.as_dict()})
    assert "warning: errors-warned/errors warned from +6m, 9 evaluations (never failing)" in _printed(result)

    checked = run("check", policy, "--region", "r3", "--plan", plan, "--state", state, "--at", str(at + 8 * MINUTE),
                  "--json")
    assert checked.exit_code == 0, checked.output  # a warning decides nothing
    got = json.loads(checked.stdout)
    assert not _schema_errors(got)
    assert [(c["check"], c["status"]) for c in got["checks"]] == [("errors", "warn"), ("latency", "pass")]
    assert got["checks"][0]["reason"] == "0.9 (warns if > 0.5); holds now (a bake warns once it holds for 1m)"


def test_backtest_says_how_far_a_breach_got_into_its_hold(work, state):  # noqa: F811
    # 2.5-blip: latency above 10 from 27m to 32m after the deploy, shorter than the check's for: 10m
    plan = write_plan(work, "blip", change={"version": "2.5-blip"},
                      waves=[{"name": "canary", "regions": ["r3"], "bake": "40m"}],
                      policies=["../policies/latency.yaml"])
    doc = rollout(plan, state, 0)
    status = json.loads(run("status", doc["rollout_id"], "--state", state, "--json").stdout)
    from datetime import datetime

    at = datetime.fromisoformat(status["waves"][0]["regions"][0]["deployed_at"].replace("Z", "+00:00")).timestamp()
    sources = {"prometheus": {"plugin": "sim", "scenario": str(work / "scenarios" / "fleet.yaml"),
                              "fleet": str(state.parent / "sim-fleet-engine-test.jsonl")}}
    policy = work / "policies" / "latency.yaml"
    # the bake ends at 30m inside the breach: it goes on until the breach settles, and passes
    result = backtest([policy], region="r3", deployed_at=at, until=at + 30 * MINUTE, sources=sources)
    assert result.outcome == "pass" and result.decided_at - at == 32 * MINUTE
    assert result.checks[0].hold == "breached 4m30s of its 10m hold, then recovered"
    assert not result.warnings
    text = _printed(result)
    assert "latency/latency: breached 4m30s of its 10m hold, then recovered" in text and "(pending)" not in text


def _printed(result) -> str:
    """What ``guardrail backtest`` prints for ``result``."""
    from guardrail.cli.console import out_console
    from guardrail.cli.prove_commands import print_result

    with out_console.capture() as captured:
        print_result(result)
    return " ".join(captured.get().split())


def test_preflight_is_not_refused_by_warnings_or_warn_only_checks_without_evidence(work, state):  # noqa: F811
    # legacy_backlog is 500 before any change (fails "> 100"); no_such_metric_total is absent
    backlog = write_policy(work, "backlog", "backlog-warn",
                           checks=[{"name": "legacy-backlog", "source": "prometheus",
                                    "query": 'max(legacy_backlog{region="{{region}}"})', "fail_if": "> 100",
                                    "mode": "warn"}])
    absent = write_policy(work, "absent", "absent-warn",
                          checks=[{"name": "missing-metric", "source": "prometheus",
                                   "query": 'sum(no_such_metric_total{region="{{region}}"})', "fail_if": "> 0",
                                   "mode": "warn"}])
    plan = write_plan(work, "preflight-warned", preflight=True, policies=[backlog, absent],
                      waves=[{"name": "canary", "regions": ["r3"], "bake": "10m"}])
    doc = rollout(plan, state, 0)
    assert doc["outcome"] == "promoted"
    with closing(SQLiteStore(state)) as store:
        [preflight] = store.events(doc["rollout_id"], "preflight")
    assert preflight["failing"] == [] and preflight["missing"] == []
    assert [(w["region"], w["check"]) for w in doc["warnings"]] == [("r3", "legacy-backlog")]

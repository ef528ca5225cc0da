"""No promotion on missing evidence, on the simulated fleet: stale readings are no data,
a window over a gap is not fresh, and a wave passes only once every check of every
deployed region has covered its whole bake, however often it is halted and resumed."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from guardrail.api import Guardrail
from guardrail.judging.evaluate import judge_check, staleness
from guardrail.judging.judge import CheckState
from guardrail.language.model import Check
from guardrail.plugin.interfaces import PluginContext, Probe
from guardrail.clock import VirtualClock
from guardrail_plugins.sim.fleet import FleetLog
from guardrail_plugins.sim.source import SimSource

DATA = Path(__file__).resolve().parent / "data" / "evidence"
MINUTE = 60.0
START = 1767607200.0
"""The scenario's start, 2026-01-05 10:00 UTC; the gap of 2.0-gap runs from +10m to +20m."""


@pytest.fixture
def work(tmp_path: Path) -> Path:
    shutil.copytree(DATA, tmp_path / "evidence")
    return tmp_path / "evidence"


def plan(work: Path, name: str, **changes) -> Path:
    doc = yaml.safe_load((work / "plan.yaml").read_text()) | changes
    path = work / f"{name}.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def source(work: Path, deployed: str | None = "2.0-gap") -> SimSource:
    context = PluginContext(clock=VirtualClock(START), state_dir=work, base_dir=work, service="evidence")
    if deployed:
        FleetLog(work / "sim-fleet-evidence.jsonl").record("r3", deployed, "deploy", "test", START)
    return SimSource(SimSource.Settings(scenario="scenario.yaml"), context)


def check(**fields) -> Check:
    return Check.model_validate({"name": "c", "source": "prometheus", **fields})


LATENCY = 'max(latency_seconds{region="r3"})'
RESTARTS = 'sum(increase(restarts_total{region="r3"}[15m]))'


def test_a_frozen_gauge_is_stale_after_its_bound(work):
    sim = source(work)
    latency = check(query=LATENCY, fail_if="> 10")
    probe = Probe("c", "r3", {"query": LATENCY})
    fresh = sim.measure(probe, START + 10 * MINUTE + 20)  # the last sample is 35s old: within 2 x 15s? no
    assert fresh.series, "the lookback still serves the last sample"
    assert staleness(latency, sim.measure(probe, START + 9 * MINUTE + 50), START + 9 * MINUTE + 50) is None
    late = START + 10 * MINUTE + 45
    reading = sim.measure(probe, late)
    assert reading.series and reading.series[0].value < 10, "Prometheus would still answer with the frozen value"
    assert staleness(latency, reading, late) == "stale: the newest sample is 1m old (max_age 30s)"
    verdict, state, detail = judge_check(latency, at=late, state=CheckState(), on_no_data="inconclusive",
                                         reading=reading)
    # Late samples are no data, but not a source that cannot answer: no step toward inconclusive_limit.
    assert (verdict.status, verdict.value) == ("inconclusive", None) and state.inconclusive_streak == 0
    assert detail == {"stale": "stale: the newest sample is 1m old (max_age 30s)"}
    relaxed = check(query=LATENCY, fail_if="> 10", max_age="2m")
    assert staleness(relaxed, reading, late) is None
    verdict, _, _ = judge_check(check(query=LATENCY, fail_if="> 10", on_no_data="pass"), at=late, state=CheckState(),
                                on_no_data="inconclusive", reading=reading)
    assert verdict.status == "pass" and verdict.value is None  # a stale reading is no data, and follows on_no_data


def test_a_counter_window_over_a_gap_is_not_fresh_evidence(work):
    sim = source(work)
    restarts = check(query=RESTARTS, fail_if="> 1.5")
    probe = Probe("c", "r3", {"query": RESTARTS})
    after = START + 25 * MINUTE  # five minutes after the gap: fresh samples, a third of the window empty
    reading = sim.measure(probe, after)
    assert reading.series and reading.series[0].value == 0, "increase() still returns a value"
    assert reading.newest_sample >= after - 15
    assert staleness(restarts, reading, after) == "stale: samples cover 37% of the query's window " \
                                                  "(min_window_coverage 50%)"
    assert staleness(check(query=RESTARTS, fail_if="> 1.5", min_window_coverage=0.3), reading, after) is None
    clean = START + 36 * MINUTE  # the window has left the gap behind
    assert staleness(restarts, sim.measure(probe, clean), clean) is None


def test_an_input_with_no_samples_makes_the_reading_stale(work):
    sim = source(work, deployed=None)
    query = 'max(latency_seconds{region="r3"}) + (sum(restarts_total{region="nowhere"}) or vector(0))'
    reading = sim.measure(Probe("c", "r3", {"query": query}), START)
    assert reading.series
    assert staleness(check(query=query, fail_if="> 10"), reading, START) == \
        "stale: an input of the query has no samples"


def _covered_by_measurements(store, rollout_id: str, phase: str, interval: float = 30.0) -> dict[tuple, float]:
    """Covered time recounted from the stored evaluations alone (not the coverage table)."""
    out: dict[tuple, float] = {}
    for m in store.measurements(rollout_id, phase):
        key = (m["region"], m["check"])
        out.setdefault(key, 0.0)
        if m["tick"] > 0 and m["status"] == "pass" and m["value"] is not None:
            out[key] += interval
    return out


def test_a_ten_minute_gap_of_every_series_mid_bake_is_never_covered(work):
    policy = yaml.safe_load((work / "policy.yaml").read_text()) | {"inconclusive_limit": 1000}
    (work / "patient.yaml").write_text(yaml.safe_dump(policy))
    path = plan(work, "gap", change={"version": "2.0-gap", "previous": "1.0"}, policies=["patient.yaml"],
                waves=[{"name": "canary", "regions": ["r3"], "bake": "30m"}])
    g = Guardrail(work / "state.db")
    try:
        result = g.rollout(path, clock_start=START)
        assert result.outcome == "promoted", result.reason
        rid = result.rollout_id
        passed = g.store.events(rid, "bake.passed")[0]["at"]
        rows = g.store.measurements(rid, "bake:canary")
        gap = [m for m in rows if START + 10 * MINUTE < m["at"] < START + 20 * MINUTE]
        assert gap and all(m["status"] == "inconclusive" for m in gap), "no tick of the gap may pass"
        reasons = {m["reason"] for m in gap if m["check"] == "latency"}
        assert "no data" in reasons and any(r.startswith("stale: the newest sample is") for r in reasons)
        coverage = {(c["region"], c["check"]): c for c in g.store.coverage(rid, "bake:canary")}
        assert coverage == {k: coverage[k] for k in [("r3", "latency"), ("r3", "restarts")]}
        for key, covered in _covered_by_measurements(g.store, rid, "bake:canary").items():
            assert covered == coverage[key]["covered"] >= 30 * MINUTE
        assert coverage[("r3", "latency")]["uncovered"] >= 10 * MINUTE - 30  # all but what max_age allows
        assert coverage[("r3", "restarts")]["uncovered"] >= 15 * MINUTE  # the window drags the gap along
        # The bake lasted its 30 minutes of evidence plus every minute without it.
        assert passed - START >= 30 * MINUTE + coverage[("r3", "restarts")]["uncovered"]
    finally:
        g.close()


def test_a_gap_with_the_default_inconclusive_limit_halts_once_the_data_is_gone(work):
    """Five minutes of late samples extend the bake; then the lookback runs out, the
    gauge has no data at all, and three such evaluations halt the wave."""
    path = plan(work, "gap-halts", change={"version": "2.0-gap", "previous": "1.0"})
    g = Guardrail(work / "state.db")
    try:
        result = g.rollout(path, clock_start=START)
        assert (result.outcome, result.exit_code) == ("halted", 3)
        assert result.reason == "no evidence: r3/evidence/latency: no data"
        latency = [m for m in g.store.measurements(result.rollout_id, "bake:canary") if m["check"] == "latency"]
        assert [m["reason"] for m in latency[-3:]] == ["no data"] * 3
        assert sum(m["reason"].startswith("stale: ") for m in latency) >= 8
        assert latency[-1]["at"] - START == pytest.approx(16 * MINUTE)
    finally:
        g.close()


def test_halted_and_resumed_five_times_it_never_promotes_before_the_bake_is_covered(work):
    path = plan(work, "flaky", change={"version": "2.0-flaky", "previous": "1.0"}, policies=["latency.yaml"],
                waves=[{"name": "canary", "regions": ["r3"], "bake": "40m"}])
    g = Guardrail(work / "state.db")
    try:
        result = g.rollout(path, clock_start=START)
        halts = 0
        while result.outcome == "halted" and halts < 8:
            halts += 1
            status = g.status(result.rollout_id)
            assert status["reason"] == result.reason
            assert result.reason.startswith("no evidence: r3/latency/latency: ")
            result = g.resume(result.rollout_id)
        assert halts >= 5, f"only {halts} halts"
        assert result.outcome == "promoted", result.reason
        rid = result.rollout_id
        covered = _covered_by_measurements(g.store, rid, "bake:canary")
        assert covered[("r3", "latency")] >= 40 * MINUTE
        passed = g.store.events(rid, "bake.passed")[0]["at"]
        uncovered = sum(30.0 for m in g.store.measurements(rid, "bake:canary")
                        if m["tick"] > 0 and m["status"] != "pass")
        assert uncovered >= halts * 3 * 30.0  # each gap: three stale ticks, then a halt
        assert passed - START >= 40 * MINUTE + uncovered
        status = g.status(rid)
        assert status["state"] == "promoted" and status["reason"] is None
    finally:
        g.close()


def test_on_a_real_clock_halts_and_resumes_never_promote_before_the_bake_is_covered(work):
    path = plan(work, "plan-realtime", clock="real", change={"version": "2.0-flaky", "previous": "1.0"},
                policies=["latency-fast.yaml"], waves=[{"name": "canary", "regions": ["r3"], "bake": "12s"}],
                deploy={"plugin": "sim", "with": {"scenario": "realtime.yaml"}},
                sources={"prometheus": {"plugin": "sim", "scenario": "realtime.yaml"}})
    g = Guardrail(work / "state.db")
    try:
        result = g.rollout(path)
        halts = 0
        while result.outcome == "halted" and halts < 15:
            halts += 1
            assert result.reason.startswith("no evidence: r3/latency/latency: ")
            assert [r["verdict"] for w in g.status(result.rollout_id)["waves"] for r in w["regions"]] == \
                ["inconclusive"]
            result = g.resume(result.rollout_id)
        assert halts >= 5, f"only {halts} halts"
        assert result.outcome == "promoted", result.reason
        covered = _covered_by_measurements(g.store, result.rollout_id, "bake:canary", interval=1.0)
        assert covered[("r3", "latency")] >= 12
        status = g.status(result.rollout_id)
        [entry] = status["waves"][0]["regions"][0]["coverage"]
        assert entry["covered"] >= entry["required"] == 12 and entry["complete"]
        assert entry["uncovered"] >= halts  # every halt came from at least one stale second
    finally:
        g.close()


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("setting", [True, {"on_inconclusive": "block"}])
def test_preflight_with_prometheus_unreachable_exits_3_naming_the_missing_evidence(work, setting):
    from support.engine_plans import run

    url = f"http://127.0.0.1:{_closed_port()}"
    path = plan(work, "unreachable", preflight=setting, deploy={"plugin": "noop"},
                sources={"prometheus": {"url": url, "timeout": "2s", "retries": 0}})
    result = run("rollout", path, "--state", work / "state.db", "--output", "json")
    assert result.exit_code == 3, result.output
    doc = yaml.safe_load(result.stdout)
    assert doc["reason"].startswith("preflight: evidence is missing before any deploy")
    assert f"r3/evidence/latency: prometheus {url}: query " in doc["reason"] and "cannot connect" in doc["reason"]
    assert [r["verdict"] for w in doc["waves"] for r in w["regions"]] == ["not_deployed"] * 3
    g = Guardrail(work / "state.db")
    try:
        assert g.store.steps(doc["rollout_id"], "deploy:") == []
        [event] = g.store.events(doc["rollout_id"], "preflight")
        assert event["failing"] == [] and len(event["missing"]) == 6
    finally:
        g.close()


def test_preflight_on_inconclusive_proceed_starts_and_the_bake_halts_instead(work):
    from support.engine_plans import run

    path = plan(work, "proceed", preflight={"on_inconclusive": "proceed"}, deploy={"plugin": "noop"},
                sources={"prometheus": {"url": f"http://127.0.0.1:{_closed_port()}", "timeout": "2s", "retries": 0}})
    result = run("rollout", path, "--state", work / "state.db", "--output", "json")
    assert result.exit_code == 3, result.output
    doc = yaml.safe_load(result.stdout)
    assert doc["reason"].startswith("no evidence: r3/evidence/")
    assert [r["verdict"] for w in doc["waves"] for r in w["regions"]] == ["inconclusive", "not_deployed",
                                                                            "not_deployed"]


def test_preflight_settings_are_validated(work):
    from support.engine_plans import run

    path = plan(work, "bad-preflight", preflight={"on_inconclusive": "hope"})
    result = run("validate", path)
    assert result.exit_code == 2 and "bad-preflight.yaml:" in result.output and "on_inconclusive" in result.output


def _control_plan(work: Path, name: str, on_no_control: str | None) -> Path:
    policy = yaml.safe_load((work / "control.yaml").read_text())
    if on_no_control:
        policy["checks"][0]["on_no_control"] = on_no_control
    (work / f"{name}-policy.yaml").write_text(yaml.safe_dump(policy))
    return plan(work, name, change={"version": "2.1-slower", "previous": "1.0"}, policies=[f"{name}-policy.yaml"],
                waves=[{"name": "everywhere", "regions": ["r3", "r1", "r2"], "parallel": True, "bake": "20m"}])


def test_a_control_check_with_no_control_left_is_judged_against_the_baseline(work):
    from guardrail.report.data import gather
    from guardrail.report.html import render

    g = Guardrail(work / "state.db")
    try:
        result = g.rollout(_control_plan(work, "no-control", None), clock_start=START + 3600)
        assert result.outcome == "rolled_back", result.reason
        assert "against the region's own window before the change (on_no_control: baseline)" in result.reason
        failed = [m for m in g.store.measurements(result.rollout_id, "bake:everywhere") if m["status"] == "fail"]
        assert failed and {m["evidence"]["judged_against"] for m in failed} == {
            "the region's own window before the change (on_no_control: baseline)"}
        page = render(gather(g.store, result.rollout_id))
        assert "bake:everywhere judged against the region&#x27;s own window before the change" in page
    finally:
        g.close()


@pytest.mark.parametrize("mode, outcome, reason", [
    ("skip", "promoted", ""),  # the check does not apply to this wave: it needs no covered time
    ("inconclusive", "halted", "no evidence: "),
])
def test_on_no_control_skip_and_inconclusive_say_so(work, mode, outcome, reason):
    g = Guardrail(work / "state.db")
    try:
        result = g.rollout(_control_plan(work, f"no-control-{mode}", mode), clock_start=START + 3600)
        assert result.outcome == outcome and (result.reason or "").startswith(reason), result.reason
        rows = g.store.measurements(result.rollout_id, "bake:everywhere")
        assert {m["evidence"].get("judged_against") for m in rows} == {f"nothing (on_no_control: {mode})"}
    finally:
        g.close()


@pytest.mark.parametrize("check, message", [
    ({"compare": "control", "on_no_control": "guess"}, "checks[0].on_no_control: expected one of 'baseline', 'inconclusive' or 'skip', got 'guess'"),
    ({"fail_if": "> 1", "on_no_control": "skip"}, "checks[0].on_no_control: this setting needs compare: control"),
])
def test_on_no_control_is_validated(work, check, message):
    from support.engine_plans import run

    policy = {"apiVersion": "guardrail/v1", "kind": "Policy", "name": "p",
              "checks": [{"name": "c", "source": "prometheus", "query": "up"} | check]}
    (work / "bad-policy.yaml").write_text(yaml.safe_dump(policy, sort_keys=False))
    result = run("validate", plan(work, "bad-control", policies=["bad-policy.yaml"]))
    assert result.exit_code == 2, result.output
    assert "bad-policy.yaml:" in result.output and message in result.output


def _script(path: Path, body: str) -> None:
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(0o755)


def test_a_missing_deploy_program_exits_2_with_its_location_and_deploys_nothing(work):
    from support.engine_plans import run

    _script(work / "rollback.sh", 'echo "$1" >> rollbacks.log')
    path = plan(work, "missing", deploy={"plugin": "command", "with": {
        "deploy": ["./deploy.sh", "{{region}}"], "rollback": ["./rollback.sh", "{{region}}"]}},
        on_failure={"actions": [{"plugin": "command", "with": {"run": ["no-such-tool-anywhere", "{{region}}"]}}]})
    result = run("rollout", path, "--state", work / "state.db")
    assert result.exit_code == 2, result.output
    lines = result.output.splitlines()
    assert lines[0] == f"{path}:12:7: deploy.with.deploy[0]: program not found: ./deploy.sh " \
                       f"(looked for {work / 'deploy.sh'})"
    assert "on_failure.actions[0].with.run[0]: program not found on PATH: no-such-tool-anywhere" in result.output
    assert "Traceback" not in result.output
    assert not (work / "rollbacks.log").exists()
    g = Guardrail(work / "state.db")
    try:
        assert g.history() == []  # refused before the rollout existed: nothing deployed, nothing locked
    finally:
        g.close()


def test_a_webhook_deployer_with_an_unusable_url_exits_2(work):
    from support.engine_plans import run

    path = plan(work, "bad-url", deploy={"plugin": "webhook", "with": {"url": "ftp:/{{region}}"}})
    result = run("rollout", path, "--state", work / "state.db")
    assert result.exit_code == 2, result.output
    assert "deploy.with.url: expected an http:// or https:// URL with a host" in result.output


def test_a_deploy_program_gone_at_run_time_is_recorded_as_never_started_and_not_rolled_back(work):
    # r3's deploy removes r1's program: readiness saw it, the deploy of r1 cannot start.
    _script(work / "deploy-r3.sh", 'rm -f deploy-r1.sh; echo "deploy $1" >> calls.log')
    _script(work / "deploy-r1.sh", 'echo "deploy $1" >> calls.log')
    _script(work / "deploy-r2.sh", 'echo "deploy $1" >> calls.log')
    _script(work / "rollback.sh", 'echo "rollback $1" >> calls.log')
    path = plan(work, "gone", deploy={"plugin": "command", "with": {
        "deploy": ["./deploy-{{region}}.sh", "{{region}}"], "rollback": ["./rollback.sh", "{{region}}"]}},
        verify_recovery={"for": "5m", "checks": "all"})
    g = Guardrail(work / "state.db")
    try:
        result = g.rollout(path, clock_start=START)
        assert result.outcome == "rolled_back", result.reason
        assert result.reason.startswith("deploy failed in r1")
        assert (work / "calls.log").read_text().split("\n")[:-1] == [
            "deploy r3", "deploy r2", "rollback r2", "rollback r3"] or \
            (work / "calls.log").read_text().split("\n")[:-1] == ["deploy r3", "rollback r3"]
        step = g.store.step(result.rollout_id, "deploy:r1")
        assert step["status"] == "failed" and step["detail"]["started"] is False
        assert g.store.step(result.rollout_id, "rollback:r1") is None
        verdicts = {r["region"]: r["verdict"] for w in g.status(result.rollout_id)["waves"] for r in w["regions"]}
        assert verdicts["r1"] == "deploy_not_started" and verdicts["r3"] == "rolled_back"
    finally:
        g.close()


class _PauseWhenBaking:
    """A person who runs `guardrail pause` as soon as the canary bakes."""

    def __init__(self):
        self.guardrail = None

    from guardrail import hookimpl

    @hookimpl
    def guardrail_on_event(self, event):
        if event["kind"] == "state.baking" and self.guardrail is not None:
            self.guardrail.pause(event["rollout_id"], "a person looks")
            self.guardrail = None


def test_paused_aborted_and_approved_rollouts_say_so(work):
    from guardrail.plugin.manager import get_plugin_manager

    pm = get_plugin_manager()
    person = _PauseWhenBaking()
    pm.register(person)
    g = Guardrail(work / "state.db", pm=pm)
    person.guardrail = g
    try:
        paused = g.rollout(plan(work, "pause-me"), clock_start=START)
        assert (paused.outcome, paused.reason) == ("halted", "paused: a person looks")
        status = g.status(paused.rollout_id)
        assert [r["verdict"] for w in status["waves"] for r in w["regions"]] == ["paused", "not_deployed",
                                                                                 "not_deployed"]
        aborted = g.abort(paused.rollout_id, "wrong day")
        assert aborted.reason == "aborted: wrong day"
        status = g.status(aborted.rollout_id)
        assert [r["verdict"] for w in status["waves"] for r in w["regions"]][:1] == ["aborted"]
        assert status["reason"] == "aborted: wrong day"

        waves = [{"name": "canary", "regions": ["r3"], "bake": "10m"},
                 {"name": "main", "regions": ["r1", "r2"], "bake": "10m", "approval": "manual"}]
        waiting = g.rollout(plan(work, "approve-me", waves=waves), clock_start=START + 3 * 3600)
        assert waiting.reason.startswith("wave 'main' waits for approval")
        assert [r["verdict"] for w in g.status(waiting.rollout_id)["waves"] for r in w["regions"]] == \
            ["pass", "not_deployed", "not_deployed"]
        done = g.approve(waiting.rollout_id)
        assert (done.outcome, done.reason) == ("promoted", None)  # no reason left over from the wait
        status = g.status(done.rollout_id)
        assert status["reason"] is None and {r["verdict"] for w in status["waves"] for r in w["regions"]} == {"pass"}
    finally:
        g.close()

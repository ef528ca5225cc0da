"""People on the record: who paused, approved, aborted, unlocked, overrode or rolled
back, and why — in status (text and JSON), the HTML report and the incident."""

from __future__ import annotations

import json
from contextlib import closing

from guardrail.state.people import identity
from guardrail.state.sqlite import SQLiteStore
from support.engine_plans import rollout, run, state, work, write_plan  # noqa: F401

SERVICE = "engine-test"
MANUAL_MAIN = {"waves": [{"name": "canary", "regions": ["r3"], "bake": "30m"},
                         {"name": "main", "regions": ["r1", "r2"], "parallel": True, "bake": "1h",
                          "approval": "manual"}]}


def test_an_approval_names_its_person_and_reason_in_status_the_report_and_the_incident(work, state, tmp_path):
    halted = rollout(write_plan(work, "manual", change={"version": "2.3-r1-bad"}, **MANUAL_MAIN), state, 3)
    rid = halted["rollout_id"]
    report = tmp_path / "report.html"
    approved = run("approve", rid, "--state", state, "--by", "alice", "--reason", "CHG-1042 approved",
                   "--output", "json", "--report", report)
    assert approved.exit_code == 1, approved.output  # r1 fails after the approval: rolled back
    doc = json.loads(approved.stdout)
    [person] = doc["people"]
    assert (person["action"], person["by"], person["reason"], person["wave"]) == (
        "approve", "alice", "CHG-1042 approved", "main")

    status = run("status", rid, "--state", state, "--json")
    assert json.loads(status.stdout)["people"] == doc["people"]
    text = run("status", rid, "--state", state)
    assert "alice approved wave main: CHG-1042 approved" in text.output

    assert "alice approved wave main: CHG-1042 approved" in report.read_text()

    incident = doc["incident"]
    assert [(p["by"], p["action"], p["reason"]) for p in incident["people"]] == [
        ("alice", "approve", "CHG-1042 approved")]
    shown = run("incidents", "show", incident["id"], "--state", state)
    assert shown.exit_code == 0, shown.output
    assert "People:\n- alice approve (wave main): CHG-1042 approved" in shown.output
    with closing(SQLiteStore(state)) as store:
        assert store.rollout(rid)["requests"]["approved"]["main"]["by"] == "alice"


def test_the_person_comes_from_the_ci_environment_when_not_named(work, state):
    halted = rollout(write_plan(work, "manual", **MANUAL_MAIN), state, 3)
    rid = halted["rollout_id"]
    paused = run("pause", rid, "--state", state, "--reason", "change board", env={"GITHUB_ACTOR": "octocat"})
    assert paused.exit_code == 0, paused.output
    unlocked = run("unlock", SERVICE, "--state", state, "--reason", "by hand", env={"GITHUB_ACTOR": None,
                                                                                  "GITLAB_USER_LOGIN": "tanuki"})
    assert unlocked.exit_code == 0, unlocked.output
    people = json.loads(run("status", rid, "--state", state, "--json").stdout)["people"]
    assert [(p["action"], p["by"], p["reason"]) for p in people] == [("pause", "octocat", "change board"),
                                                                     ("unlock", "tanuki", "by hand")]


def test_identity_prefers_by_then_github_then_gitlab_then_user():
    env = {"GITHUB_ACTOR": "gh", "GITLAB_USER_LOGIN": "gl", "USER": "u"}
    assert identity("  bob ", env) == "bob"
    assert identity(None, env) == "gh"
    assert identity(None, {"GITLAB_USER_LOGIN": "gl", "USER": "u"}) == "gl"
    assert identity(None, {"USER": "u"}) == "u"
    assert identity(None, {}) == "unknown"

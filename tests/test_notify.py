"""Notifications (``notify:``, ``guardrail.incidents.notify``) and gates (``gate:`` on a
wave, ``guardrail.rollout.gates``), against the strict local Slack fake and a webhook
receiver: the chosen events arrive in order, and a gate's answer decides the wave."""

from __future__ import annotations

import json
from contextlib import closing

import pytest

from guardrail.state.sqlite import SQLiteStore
from guardrail_plugins.sim import FleetLog
from support.engine_plans import rollout, run, state, states, work, write_plan  # noqa: F401
from support.fakes import FakeReceiver, FakeSlack

SERVICE = "engine-test"
ALL = ["started", "wave_deployed", "wave_promoted", "waiting_for_approval", "halted", "rolled_back", "done"]


@pytest.fixture
def slack():
    with FakeSlack() as fake:
        yield fake


@pytest.fixture
def hook():
    with FakeReceiver(secret="s3cr3t") as fake:
        yield fake


@pytest.fixture
def gate():
    """An unsigned receiver: a gate's POST carries no signature."""
    with FakeReceiver() as fake:
        yield fake


def fleet(state) -> list[tuple[str, str]]:
    log = FleetLog(state.parent / f"sim-fleet-{SERVICE}.jsonl")
    return [(r["action"], r["region"]) for r in log.records if r.get("action") != "start"]


def _notify(slack, hook, slack_events, hook_events=None) -> list[dict]:
    return [{"plugin": "slack", "with": {"url": slack.webhook_url}, "events": slack_events},
            {"plugin": "webhook", "with": {"url": hook.hook_url, "secret": "s3cr3t"},
             **({"events": hook_events} if hook_events else {})}]


def test_the_chosen_events_reach_slack_and_a_webhook_in_order(work, state, slack, hook):  # noqa: F811
    plan = write_plan(work, "told", notify=_notify(slack, hook, ["started", "wave_promoted", "done"]))
    doc = rollout(plan, state, 0)
    texts = [m["text"] for m in slack.messages]
    assert [t.split(" ", 1)[0] for t in texts] == [":rocket:", ":arrow_forward:", ":arrow_forward:",
                                                   ":checkered_flag:"], texts
    assert "started: canary [r3] → main [r1, r2]" in texts[0]
    assert "wave canary passed" in texts[1] and "wave main passed" in texts[2] and "done: promoted" in texts[3]
    events = [(b["event"], b["notification"]["wave"]) for b in hook.received]
    assert events == [("rollout.started", None), ("rollout.wave_deployed", "canary"),
                      ("rollout.wave_promoted", "canary"), ("rollout.wave_deployed", "main"),
                      ("rollout.wave_promoted", "main"), ("rollout.done", None)]
    assert {b["notification"]["rollout_id"] for b in hook.received} == {doc["rollout_id"]}
    assert slack.violations == [] and hook.violations == []  # signed, valid Block Kit
    with closing(SQLiteStore(state)) as store:
        rows = store.deliveries(incident_id=f"NTF-{doc['rollout_id']}")
        assert {r["status"] for r in rows} == {"delivered"} and len(rows) == 4 + 6


def test_a_rolled_back_rollout_and_a_wave_waiting_for_approval(work, state, slack, hook):  # noqa: F811
    bad = write_plan(work, "bad", change={"version": "2.1-bad"},
                     notify=_notify(slack, hook, ["rolled_back", "done"], ["halted", "rolled_back", "done"]))
    rollout(bad, state, 1)
    assert [b["event"] for b in hook.received] == ["rollout.rolled_back", "rollout.done"]
    assert "rolled back r3" in hook.received[0]["notification"]["title"]
    assert "done: rolled back and recovered" in hook.received[1]["notification"]["text"]
    assert len(slack.messages) == 2
    hook.received.clear()
    gated = write_plan(work, "gated", service="gated-svc", notify=_notify(slack, hook, ["waiting_for_approval"]),
                       waves=[{"name": "canary", "regions": ["r3"], "bake": "10m"},
                              {"name": "main", "regions": ["r1"], "bake": "10m", "approval": "manual"}])
    rollout(gated, state, 3)
    assert [b["event"] for b in hook.received][-2:] == ["rollout.wave_promoted", "rollout.waiting_for_approval"]
    assert ":hourglass:" in slack.messages[-1]["text"] and "wave main waits for approval" in slack.messages[-1]["text"]


def test_a_sink_that_is_down_never_delays_the_rollback_and_its_notifications_stay_spooled(work, state, hook):  # noqa: F811
    hook.down = True  # 503 to everything
    plan = write_plan(work, "unheard", change={"version": "2.1-bad"}, on_failure={"delivery_grace": "1s"},
                      notify=[{"plugin": "webhook", "with": {"url": hook.hook_url, "secret": "s3cr3t", "retries": 0,
                                                                "timeout": "2s"}}])
    doc = rollout(plan, state, 1)
    with closing(SQLiteStore(state)) as store:
        left = store.deliveries("pending", incident_id=f"NTF-{doc['rollout_id']}")
        assert [r["payload"]["event"] for r in left] == ["started", "wave_deployed", "rolled_back", "done"]
    hook.down = False
    flushed = run("incidents", "flush", "--state", state, "--json")
    assert flushed.exit_code == 0, flushed.output
    assert [b["event"] for b in hook.received] == ["rollout.started", "rollout.wave_deployed",
                                                   "rollout.rolled_back", "rollout.done"]


def _gated(work, gate, **settings):
    return write_plan(work, "gate", waves=[
        {"name": "canary", "regions": ["r3"], "bake": "10m"},
        {"name": "main", "regions": ["r1", "r2"], "bake": "10m",
         "gate": {"plugin": "webhook", "with": {"url": gate.hook_url, "backoff": "50ms", **settings}}}])


def test_a_gate_that_says_no_halts_before_its_wave(work, state, gate):  # noqa: F811
    gate.fail_next(403, "CHG-1042 is not approved")
    doc = rollout(_gated(work, gate), state, 3)
    assert doc["outcome"] == "halted" and "gate of wave 'main' said no: HTTP 403: CHG-1042 is not approved" \
        in doc["reason"]
    assert fleet(state) == [("deploy", "r3")] and len(gate.requests) == 1  # a 4xx is final: asked once
    asked = gate.requests[0].json
    assert (asked["rollout_id"], asked["wave"]["name"], asked["wave"]["regions"]) == (doc["rollout_id"], "main",
                                                                                      ["r1", "r2"])
    with closing(SQLiteStore(state)) as store:
        assert states(store, doc["rollout_id"])[-1] == "halted"
    # Asked again on resume; a yes lets the wave deploy, and it is not asked a third time.
    resumed = run("resume", doc["rollout_id"], "--state", state, "--json")
    assert resumed.exit_code == 0, resumed.output
    assert sorted(fleet(state)) == [("deploy", "r1"), ("deploy", "r2"), ("deploy", "r3")]
    assert len(gate.requests) == 2 and gate.requests[1].json["wave"]["name"] == "main"


def test_a_gate_that_says_yes_lets_the_wave_deploy(work, state, gate):  # noqa: F811
    doc = rollout(_gated(work, gate), state, 0)
    assert len(gate.requests) == 1 and gate.requests[0].json["change"]["version"] == "2.0"
    with closing(SQLiteStore(state)) as store:
        [answer] = store.events(doc["rollout_id"], "gate.answered")
        assert answer["ok"] is True and answer["detail"] == "HTTP 200"


def test_a_gate_that_keeps_failing_is_retried_within_its_bound_then_halts(work, state, gate):  # noqa: F811
    gate.fail_next(503, "maintenance", times=10)
    doc = rollout(_gated(work, gate, retries=2), state, 3)
    assert len(gate.requests) == 3  # the first attempt and two retries
    assert "said no: HTTP 503: maintenance (after 3 attempts)" in doc["reason"]
    assert fleet(state) == [("deploy", "r3")]


def test_a_gate_and_notify_are_validated_like_the_rest_of_the_plan(work):
    plan = write_plan(work, "wrong", notify=[{"plugin": "slak", "with": {}}, {"plugin": "slack", "events": ["oops"]}],
                      waves=[{"name": "canary", "regions": ["r3"], "bake": "10m",
                              "gate": {"plugin": "webhook", "with": {"url": "ftp://x"}}}])
    result = run("validate", plan, "--json")
    assert result.exit_code == 2
    messages = {(p["path"], p["message"].split(";")[0][:40]) for p in json.loads(result.stdout)["problems"]}
    paths = {path for path, _ in messages}
    assert {"notify[0].plugin", "waves[0].gate.with.url"} <= paths, messages
    assert any(path.startswith("notify[1].events") for path in paths), messages

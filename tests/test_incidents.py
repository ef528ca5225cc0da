"""The one incident of a failed rollout: lifecycle, content, updates, resume, commands.

Rollouts run in-process on the simulated fleet (tests/data/incidents, virtual clock);
the ``journal`` sink shows every update a sink received, in order.
"""

from __future__ import annotations

import json
from contextlib import closing

import pytest

from guardrail import hookimpl
from guardrail.api import Guardrail
from guardrail.errors import ConfigError
from guardrail.plugin.manager import get_plugin_manager
from guardrail.state.sqlite import SQLiteStore
from support.fakes.rollouts import deliveries, journal, run_api, write_plan


def _minutes(a: str, b: str) -> float:
    from datetime import datetime

    return (datetime.fromisoformat(b.replace("Z", "+00:00")) - datetime.fromisoformat(a.replace("Z", "+00:00"))
            ).total_seconds() / 60


def test_lifecycle_identified_monitoring_resolved_one_incident(tmp_path):
    state = tmp_path / "state" / "state.db"
    result = run_api(write_plan(tmp_path / "w"), state)
    assert result.outcome == "rolled_back"
    updates = journal(state)
    assert [u["status"] for u in updates] == ["identified", "monitoring", "resolved"]
    assert [u["revision"] for u in updates] == [1, 2, 3]
    assert {u["id"] for u in updates} == {f"INC-{result.rollout_id}"}
    assert {u["dedup_key"] for u in updates} == {f"guardrail:mail-sender:{result.rollout_id}"}
    assert [u["severity"] for u in updates] == ["error", "warning", "info"]
    assert [t["status"] for t in updates[-1]["timeline"]] == ["identified", "monitoring", "resolved"]
    with closing(SQLiteStore(state)) as store:
        [incident] = store.incidents()
        assert incident["status"] == "resolved"
        kinds = [e["kind"] for e in store.events(result.rollout_id) if not e["kind"].startswith("bake.")]
    # sent while the rollback runs, monitoring once it is done, resolved after the recovery held
    assert kinds.index("state.rolling_back") < kinds.index("incident.identified") < kinds.index("state.rolled_back")
    assert kinds.index("state.rolled_back") < kinds.index("incident.monitoring") < kinds.index("incident.resolved")
    assert _minutes(updates[1]["at"], updates[2]["at"]) >= 10  # verify_recovery.for


def test_what_the_incident_says(tmp_path):
    state = tmp_path / "state" / "state.db"
    result = run_api(write_plan(tmp_path / "w"), state)
    identified, monitoring, resolved = journal(state)
    assert identified["service"] == "mail-sender"
    assert identified["change"] == {"version": "2.1-bad", "previous": "1.0", "description": "improved link tracking",
                                    "ticket": "CHG-1042"}
    assert identified["regions"] == [{"region": "r3", "wave": "canary", "state": "rolling back"},
                                     {"region": "r1", "wave": "main", "state": "untouched (1.0)"},
                                     {"region": "r2", "wave": "main", "state": "untouched (1.0)"}]
    assert monitoring["regions"][0]["state"] == "rolled back"
    [check] = identified["failing_checks"]
    assert check["query"] == 'max(errors_ratio{region="r3"})'
    assert check["value"] == 0.9 and check["threshold"] == 0.5 and check["comparison"] == "> 0.5"
    assert check["first_breach_at"] and check["observed"][-1] == {"at": check["first_breach_at"], "value": 0.9,
                                                                   "status": "fail"}
    assert len(check["observed"]) > 1 and check["observed"][0]["status"] == "pass"
    assert identified["decision"] == "r3/errors/error-ratio: 0.9 (fails if > 0.5)"
    assert monitoring["actions"] == [{"phase": "failure", "plugin": "command", "region": "r3", "ok": True,
                                      "detail": "send injection paused in r3"}]
    assert [a["detail"] for a in resolved["actions"]] == ["send injection paused in r3", "stalled sends resumed in r3"]
    assert resolved["see_more"] == f"guardrail status {result.rollout_id}"
    assert f"guardrail incidents show INC-{result.rollout_id}" in resolved["commands"]
    assert resolved["note"] == "checks passed for 10m after rollback"


def test_a_failed_action_is_shown_failed_in_the_incident(tmp_path):
    state = tmp_path / "state" / "state.db"
    plan = write_plan(tmp_path / "w", on_failure={"actions": [
        {"plugin": "command", "with": {"run": ["sh", "-c", "echo drain failed on $0 >&2; exit 3", "{{region}}"]}}]})
    assert run_api(plan, state).outcome == "rolled_back"
    [action] = journal(state)[1]["actions"]
    assert action["ok"] is False and "drain failed on r3" in action["detail"]


def test_one_incident_for_many_failing_regions(tmp_path):
    state = tmp_path / "state" / "state.db"
    result = run_api(write_plan(tmp_path / "w", change={"version": "2.2-everywhere"}), state)
    assert result.outcome == "rolled_back"
    updates = journal(state)
    assert {u["id"] for u in updates} == {f"INC-{result.rollout_id}"} and len(updates) == 3
    assert sorted(f["region"] for f in updates[0]["failing_checks"]) == ["r1", "r2", "r3"]
    assert updates[0]["rolled_back"] == ["r2", "r1", "r3"]


def test_a_relapse_goes_back_to_identified_and_resolves_only_after_a_full_clean_window(tmp_path):
    state = tmp_path / "state" / "state.db"
    assert run_api(write_plan(tmp_path / "w", scenario="relapse.yaml"), state).outcome == "rolled_back"
    updates = journal(state)
    assert [u["status"] for u in updates] == ["identified", "monitoring", "identified", "monitoring", "resolved"]
    relapse, recovering, resolved = updates[2], updates[3], updates[4]
    assert "failed again" in relapse["note"] and "r3/errors/error-ratio" in relapse["note"]
    assert relapse["recovery"]["relapses"] == 1
    assert _minutes(recovering["at"], resolved["at"]) >= 10  # the whole window, after the relapse
    assert "1 relapse before" in resolved["note"]


def test_a_failure_that_persists_is_never_resolved_and_needs_a_person(tmp_path):
    state = tmp_path / "state" / "state.db"
    assert run_api(write_plan(tmp_path / "w", scenario="recurring.yaml"), state).outcome == "rollback_failed"
    updates = journal(state)
    assert "resolved" not in {u["status"] for u in updates}
    last = updates[-1]
    assert last["status"] == "identified" and last["needs_person"] and last["severity"] == "critical"
    assert "recovery not achieved" in last["note"]


def test_an_update_goes_out_every_update_every_while_open(tmp_path):
    state = tmp_path / "state" / "state.db"
    plan = write_plan(tmp_path / "w", scenario="recurring.yaml", on_failure={"update_every": "10m"})
    assert run_api(plan, state).outcome == "rollback_failed"
    updates = journal(state)
    periodic = [u for u in updates if (u["note"] or "").startswith("Still failing")]
    assert len(periodic) >= 2
    times = [u["at"] for u in updates]
    assert all(_minutes(a, b) <= 10 for a, b in zip(times, times[1:]))  # never 10 minutes without news
    assert all(_minutes(a, b) >= 10 for a, b in zip([u["at"] for u in periodic], [u["at"] for u in periodic][1:]))


def test_the_default_update_every_is_thirty_minutes(tmp_path):
    state = tmp_path / "state" / "state.db"
    assert run_api(write_plan(tmp_path / "w", scenario="recurring.yaml"), state).outcome == "rollback_failed"
    updates = journal(state)
    assert updates[-1]["update_every"] == "30m"
    periodic = [u for u in updates if (u["note"] or "").startswith("Still")]
    assert len(periodic) == 1 and _minutes(updates[2]["at"], periodic[0]["at"]) == 30


class _Crash(BaseException):
    """Stands for a kill -9 right after an event (BaseException: nothing catches it)."""


class _CrashAt:
    def __init__(self, kind: str):
        self.kind, self.armed = kind, True

    @hookimpl
    def guardrail_on_event(self, event):
        if self.armed and event["kind"] == self.kind:
            self.armed = False
            raise _Crash(self.kind)


@pytest.mark.parametrize("kind", ["incident.identified", "state.rolled_back", "incident.monitoring",
                                  "recovery.relapsed", "incident.resolved"])
def test_a_resumed_rollout_never_sends_an_update_twice(tmp_path, kind):
    state = tmp_path / "state" / "state.db"
    plan = write_plan(tmp_path / "w", scenario="relapse.yaml")
    api = Guardrail(state, pm=get_plugin_manager(extra_plugins=[_CrashAt(kind)]))
    with pytest.raises(_Crash):
        api.rollout(plan)
    rollout_id = api.store.rollouts()[0]["id"]
    assert api.resume(rollout_id).outcome == "rolled_back"
    api.close()
    updates = journal(state)
    assert [u["revision"] for u in updates] == [1, 2, 3, 4, 5]  # each once, in order, none lost
    assert [u["status"] for u in updates] == ["identified", "monitoring", "identified", "monitoring", "resolved"]
    rows = deliveries(state, "journal")
    assert len(rows) == 5 and {r["status"] for r in rows} == {"delivered"}


def test_the_incident_list_form_is_validated_where_it_is_written(tmp_path):
    plan = write_plan(tmp_path / "w", sinks=[{"plugin": "journal"},
                                             {"plugin": "pagerduty", "with": {"routing_key": "short"}},
                                             {"plugin": "pagerdooty"}])
    with pytest.raises(ConfigError) as raised:
        Guardrail(tmp_path / "s.db").load(plan)
    messages = [f"{p.path}: {p.message}" for p in raised.value.problems]
    assert any(m.startswith("on_failure.incident.1.with.routing_key:") or
               m.startswith("on_failure.incident[1].with.routing_key:") for m in messages), messages
    assert any("unknown incident sink 'pagerdooty' (did you mean 'pagerduty'?)" in m for m in messages), messages


def test_incidents_list_and_show(tmp_path, cli):
    state = tmp_path / "state" / "state.db"
    result = run_api(write_plan(tmp_path / "w"), state)
    listed = cli("incidents", "list", "--state", str(state), "--json")
    assert listed.exit_code == 0, listed.output
    [row] = json.loads(listed.stdout)["incidents"]
    assert row["id"] == f"INC-{result.rollout_id}" and row["status"] == "resolved" and row["spooled"] == 0
    table = cli("incidents", "list", "--state", str(state))
    assert f"INC-{result.rollout_id}" in table.stdout
    shown = cli("incidents", "show", result.rollout_id, "--state", str(state), "--json")
    assert shown.exit_code == 0, shown.output
    doc = json.loads(shown.stdout)
    assert doc["incident"]["status"] == "resolved"
    assert [(d["sink"], d["status"], d["delivery"]) for d in doc["deliveries"]] == [
        ("journal", "identified", "delivered"), ("journal", "monitoring", "delivered"),
        ("journal", "resolved", "delivered")]
    text = cli("incidents", "show", f"INC-{result.rollout_id}", "--state", str(state))
    assert text.exit_code == 0 and 'query: max(errors_ratio{region="r3"})' in text.stdout
    assert "timeline" in text.stdout and "send injection paused in r3" in text.stdout
    missing = cli("incidents", "show", "INC-nope", "--state", str(state))
    assert missing.exit_code == 2 and "no incident" in missing.output

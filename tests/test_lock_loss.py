"""A rollout that stalled past its lease and had its lock taken over changes nothing more:
it stops before its next side effect or tick (exit 5), and leaves the new holder's lock
alone whatever it does on its way out."""

from __future__ import annotations

import json
import time
from contextlib import closing

import pytest

from guardrail import hookimpl
from guardrail.api import Guardrail
from guardrail.errors import ExitCode, LockLostError
from guardrail.state.locks import Lease
from guardrail.plugin.manager import get_plugin_manager
from guardrail.state.sqlite import SQLiteStore
from support.fakes.rollouts import write_plan

SERVICE = "mail-sender"  # tests/data/incidents/plan.yaml


def test_a_stalled_lease_taken_over_is_lost_and_never_released_or_kept_over_the_new_holder(tmp_path):
    path = tmp_path / "state.db"
    with closing(SQLiteStore(path)) as one, closing(SQLiteStore(path)) as other:
        stalled = Lease(one, SERVICE, "r-stalled", duration=0.3)
        stalled.acquire()
        stalled.check()  # it holds the lock
        stalled._stop_heartbeat()  # the process stops (a paused VM): nothing renews the lease
        time.sleep(0.5)
        newer = Lease(other, SERVICE, "r-newer", duration=60)
        newer.acquire()
        assert newer.took_over is not None and newer.took_over.why == "lease-expired"
        with pytest.raises(LockLostError) as lost:
            stalled.check()
        assert "r-newer" in str(lost.value) and lost.value.exit_code == ExitCode.LOCKED
        stalled.keep("halted")  # on its way out it must not write over the newer lock ...
        stalled.release()  # ... nor delete it
        assert one.lock(SERVICE)["rollout_id"] == "r-newer"
        newer.release()
        assert one.lock(SERVICE) is None


class _Thief:
    """Once the canary bakes, another process takes the lock (as after a lapsed lease)."""

    def __init__(self, state):
        self.state = state

    @hookimpl
    def guardrail_on_event(self, event):
        if event["kind"] == "state.baking":
            with closing(SQLiteStore(self.state)) as store:
                store.release_lock(SERVICE)
                assert store.try_lock(SERVICE, "r-thief", "elsewhere:4242", "elsewhere", 4242, 600,
                                      lambda row: True) is None


def test_a_rollout_whose_lock_was_taken_stops_before_its_next_change(tmp_path):
    state = tmp_path / "state" / "state.db"
    plan = write_plan(tmp_path / "w")
    api = Guardrail(state, pm=get_plugin_manager(extra_plugins=[_Thief(state)]))
    try:
        with pytest.raises(LockLostError) as lost:
            api.rollout(plan)
    finally:
        api.close()
    assert "r-thief (elsewhere:4242) holds it now" in str(lost.value)
    with closing(SQLiteStore(state)) as store:
        [row] = store.rollouts()
        assert row["state"] == "baking" and row["outcome"] is None  # nothing written after the loss
        assert store.lock(SERVICE)["rollout_id"] == "r-thief"
        assert [s["key"] for s in store.steps(row["id"], "deploy:")] == ["deploy:r3"]
        assert store.steps(row["id"], "rollback:") == [] and store.measurements(row["id"]) == []
    fleet = [json.loads(line) for line in (state.parent / f"sim-fleet-{SERVICE}.jsonl").read_text().splitlines()]
    assert [(f["action"], f.get("region")) for f in fleet if f["action"] != "start"] == [("deploy", "r3")]

"""One deliverer per (incident, sink) chain at a time: two ``guardrail incidents flush``
processes (or a flush and a running rollout) never send one update twice, on a shared
SQLite file and on a PostgreSQL database (separate connections, as separate runners)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from contextlib import closing

from guardrail.incidents.delivery import new_holder
from guardrail.state.sqlite import SQLiteStore
from support.fakes import FakePagerDuty
from support.fakes.rollouts import deliveries, run_api, write_plan

PD_KEY = "R0UT1NGKEY0123456789abcdef012345"


class _GatedPagerDuty(FakePagerDuty):
    """Holds every request until ``gate`` opens; ``arrived`` says one is being held."""

    def __init__(self, routing_key: str):
        self.gate, self.arrived = threading.Event(), threading.Event()
        super().__init__(routing_key)

    def handle(self, request):
        self.arrived.set()
        self.gate.wait(120)
        return super().handle(request)


def _flush(state) -> subprocess.Popen:
    env = {**os.environ, "GUARDRAIL_DISABLE_PLUGIN_AUTOLOAD": "1"}
    return subprocess.Popen([sys.executable, "-m", "guardrail", "incidents", "flush", "--state", str(state), "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def test_a_second_flush_leaves_a_chain_in_flight_to_its_deliverer(tmp_path, backend):
    state = backend.spec
    with _GatedPagerDuty(PD_KEY) as pagerduty:
        sinks = [{"plugin": "pagerduty", "with": {"routing_key": PD_KEY, "url": pagerduty.enqueue_url,
                                                  "timeout": "120s", "retries": 0}}]
        pagerduty.down = True
        run_api(write_plan(tmp_path / "w", sinks=sinks), state)
        assert [r["status"] for r in deliveries(state, "pagerduty")] == ["pending"] * 3
        pagerduty.down, pagerduty.arrived = False, threading.Event()
        sent_before = len(pagerduty.bodies("POST"))

        first = _flush(state)
        assert pagerduty.arrived.wait(120), first.communicate(timeout=5)
        second = _flush(state)  # while the first one's request is held by the service
        out, err = second.communicate(timeout=60)  # a second deliverer would wait on the gate
        assert second.returncode == 1, out + err
        [busy] = json.loads(out)["results"]
        assert busy["outcome"] == "busy" and "being delivered by" in busy["error"], busy

        pagerduty.gate.set()
        out, err = first.communicate(timeout=120)
        assert first.returncode == 0, out + err
        assert [r["outcome"] for r in json.loads(out)["results"]] == ["delivered"] * 3

    sent = pagerduty.bodies("POST")[sent_before:]
    assert [b["event_action"] for b in sent] == ["trigger", "trigger", "resolve"]  # each update once, in order
    assert [r["status"] for r in deliveries(state, "pagerduty")] == ["delivered"] * 3
    assert backend.rows("SELECT COUNT(*) FROM delivery_claims") == [(0,)]  # released when done


def test_a_claim_lapses_so_a_killed_deliverer_does_not_hold_its_chain_forever(backend):
    with closing(backend.open()) as store:
        dead, alive = new_holder(), new_holder()
        assert store.claim_chain("INC-1", "slack", dead, lease=0.2) is None
        assert store.claim_chain("INC-1", "slack", alive, lease=60)["holder"] == dead
        assert store.claim_chain("INC-1", "slack", dead, lease=0.2) is None  # its holder renews it
        time.sleep(0.3)
        assert store.claim_chain("INC-1", "slack", alive, lease=60) is None  # lapsed: taken over
        store.release_chain("INC-1", "slack", dead)  # a late release by the old holder changes nothing
        assert store.claim_chain("INC-1", "slack", dead, lease=60)["holder"] == alive


def test_a_claim_whose_process_is_gone_from_this_host_is_taken_at_once(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        import socket

        with closing(SQLiteStore(tmp_path / "state.db")) as store:
            gone_holder = f"{socket.gethostname()}:{dead.pid}:0badc0de"
            live_holder = f"{socket.gethostname()}:{alive.pid}:0badc0de"
            elsewhere = f"another-host:{dead.pid}:0badc0de"
            me = new_holder()
            from guardrail.incidents.delivery import claim_gone

            assert store.claim_chain("INC-1", "slack", gone_holder, lease=600) is None
            assert store.claim_chain("INC-1", "slack", me, lease=60, gone=claim_gone) is None  # at once, not in 10 min
            assert store.claim_chain("INC-2", "slack", live_holder, lease=600) is None
            assert store.claim_chain("INC-2", "slack", me, lease=60, gone=claim_gone)["holder"] == live_holder
            assert store.claim_chain("INC-3", "slack", elsewhere, lease=600) is None  # another host: its lease rules
            assert store.claim_chain("INC-3", "slack", me, lease=60, gone=claim_gone)["holder"] == elsewhere
    finally:
        alive.kill()
        alive.wait()


def test_a_flush_delivers_at_once_a_chain_claimed_by_a_process_that_died(tmp_path):
    import socket

    from support.fakes import FakePagerDuty as Service

    state = tmp_path / "state" / "state.db"
    with Service(PD_KEY) as pagerduty:
        sinks = [{"plugin": "pagerduty", "with": {"routing_key": PD_KEY, "url": pagerduty.enqueue_url,
                                                  "timeout": "30s", "retries": 0}}]
        pagerduty.down = True
        run_api(write_plan(tmp_path / "w", sinks=sinks), state)
        pending = deliveries(state, "pagerduty")
        assert [r["status"] for r in pending] == ["pending"] * 3
        dead = subprocess.Popen([sys.executable, "-c", "pass"])
        dead.wait()  # a deliverer killed mid-chain: its claim would run for ten more minutes
        with closing(SQLiteStore(state)) as store:
            assert store.claim_chain(pending[0]["incident_id"], "pagerduty",
                                     f"{socket.gethostname()}:{dead.pid}:0badc0de", lease=600) is None
        pagerduty.down = False
        flushed = _flush(state)
        out, err = flushed.communicate(timeout=120)
        assert flushed.returncode == 0, out + err
        assert [r["outcome"] for r in json.loads(out)["results"]] == ["delivered"] * 3

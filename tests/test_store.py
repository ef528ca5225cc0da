"""The store conformance suite: every test taking ``backend`` runs on SQLite and on a real
PostgreSQL (tests/support/stores.py). Steps committed before and after their side
effect, one measurement per (phase, tick, region, policy, check), a store from a newer
guardrail refused, secrets that never reach the storage; and, for SQLite, WAL and its
schema-1 migration."""

from __future__ import annotations

import json
import multiprocessing
import shutil
import sqlite3
import sys
import time
from contextlib import closing
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from guardrail.cli import create_app
from guardrail.errors import ExitCode, NotFound, StoreError
from guardrail.secrets import Redactor
from guardrail.state.open import open_store
from guardrail.state.protocol import Store
from guardrail.state.sqlite import SCHEMA_VERSION, SQLiteStore
from support.stores import add_measurements

DATA = Path(__file__).parent / "data" / "engine"
SECRET = "s3cr3t-T0KEN-4f9a2c"
TABLES = {"meta", "rollouts", "events", "steps", "ticks", "baselines", "incidents", "deliveries", "sink_refs", "locks"}


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "state.db"


def _raw(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(path)


def _rollout(store: SQLiteStore, rollout_id: str = "r-1", service: str = "svc") -> None:
    store.create_rollout({"id": rollout_id, "service": service, "version": "2.0", "previous": "1.0",
                          "plan_path": "/plans/p.yaml", "plan_digest": "d", "clock": "virtual", "clock_start": 1000.0})


def _measurement(store: SQLiteStore, **values) -> tuple:
    """A row in the store's column order, from a few named values."""
    row = {c: None for c in store.MEASUREMENT_COLUMNS}
    row.update(phase="bake:canary", tick=0, at=1000.0, region="r3", policy="errors", check_name="errors",
               status="pass", value=0.01, threshold=0.5, comparison="> 0.5", pending=0, reason="0.01 (fails if > 0.5)",
               query='max(errors_ratio{region="r3"})', evidence={"series": 1}, streak=0, evaluations=1, failures=0,
               inconclusives=0)
    row.update(values)
    return tuple(row[c] for c in store.MEASUREMENT_COLUMNS)


def test_wal_mode_and_a_schema_created_idempotently(path):
    with closing(SQLiteStore(path)) as store:
        _rollout(store)
    for _ in range(2):  # reopening neither fails nor loses anything
        with closing(SQLiteStore(path)) as store:
            assert store.rollout("r-1")["state"] == "pending"
    with closing(_raw(path)) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert TABLES <= tables
        views = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'view'")}
        assert views == {"measurements"}
        assert db.execute("SELECT key, value FROM meta").fetchall() == [("schema_version", str(SCHEMA_VERSION))]
        assert db.execute("SELECT COUNT(*) FROM rollouts").fetchone()[0] == 1


def _open_once(path, barrier, results):
    barrier.wait()  # every process opens the new file at the same instant
    try:
        SQLiteStore(path).close()
        results.put("ok")
    except Exception as exc:  # noqa: BLE001 - reported to the test
        results.put(f"{type(exc).__name__}: {exc}")


def test_processes_opening_a_new_state_file_at_once_all_succeed(tmp_path):
    """Two CI jobs starting together on a shared state file: switching a new file to WAL
    answered "database is locked" to all but one of them."""
    context = multiprocessing.get_context("fork")
    answers = []
    for round_ in range(15):
        path, barrier, results = tmp_path / f"state-{round_}.db", context.Barrier(3), context.Queue()
        procs = [context.Process(target=_open_once, args=(path, barrier, results)) for _ in range(3)]
        for proc in procs:
            proc.start()
        answers += [results.get(timeout=120) for _ in procs]
        for proc in procs:
            proc.join(timeout=120)
    assert answers == ["ok"] * 45, [a for a in answers if a != "ok"][:3]


def test_a_step_is_committed_as_started_before_and_finished_after(backend):
    with closing(backend.open()) as store:
        assert isinstance(store, Store)
        _rollout(store)
        store.start_step("r-1", "deploy:r3", 1000.0, {"region": "r3"})
        # Visible to another connection at once: committed, not pending in a transaction.
        assert backend.rows("SELECT status, attempts, finished_at FROM steps") == [("started", 1, None)]
        step = store.step("r-1", "deploy:r3")
        assert step["status"] == "started" and step["detail"] == {"region": "r3"} and step["started_at"] == 1000.0

        store.finish_step("r-1", "deploy:r3", True, 1010.0, {"region": "r3", "outcome": "sim: r3 runs 2.0"})
        step = store.step("r-1", "deploy:r3")
        assert (step["status"], step["finished_at"], step["attempts"]) == ("done", 1010.0, 1)
        assert step["detail"]["outcome"] == "sim: r3 runs 2.0"

        # After a crash the same key is started again: one row, attempts counted.
        store.start_step("r-1", "rollback:r3", 1020.0)
        store.finish_step("r-1", "rollback:r3", False, 1021.0, {"outcome": "exit 1"})
        assert store.step("r-1", "rollback:r3")["status"] == "failed"
        store.start_step("r-1", "rollback:r3", 1030.0)
        step = store.step("r-1", "rollback:r3")
        assert (step["status"], step["attempts"], step["started_at"]) == ("started", 2, 1020.0)

        assert [s["key"] for s in store.steps("r-1", "deploy:")] == ["deploy:r3"]
        assert [s["key"] for s in store.steps("r-1")] == ["deploy:r3", "rollback:r3"]
        assert store.step("r-1", "deploy:r1") is None


def test_measurements_are_stored_with_the_judges_memory_and_read_back_by_phase(backend):
    with closing(backend.open()) as store:
        _rollout(store)
        add_measurements(store, "r-1", [_measurement(store), _measurement(store, region="r1"),
                                       _measurement(store, tick=1, at=1030.0, status="inconclusive", value=None,
                                                    streak=1, reason="no data")])
        add_measurements(store, "r-1", [_measurement(store, phase="recovery")])
        assert store.measurement_count("r-1") == 4
        rows = store.measurements("r-1", "bake:canary", region="r3", check="errors")
        assert [(m["tick"], m["status"], m["streak"], m["pending"]) for m in rows] == [
            (0, "pass", 0, False), (1, "inconclusive", 1, False)]
        assert rows[0]["query"] == 'max(errors_ratio{region="r3"})' and rows[0]["evidence"] == {"series": 1}
        assert [m["phase"] for m in store.measurements("r-1", "recovery")] == ["recovery"]


def test_a_tick_is_one_row_and_the_view_shows_each_evaluation(backend):
    with closing(backend.open()) as store:
        _rollout(store)
        add_measurements(store, "r-1", [_measurement(store, check_name=f"c{i}") for i in range(3)]
                               + [_measurement(store, policy="other")])
        # A phase resumed with more items (its plan changed before an abort) completes the
        # tick it had stored: the new evaluations are appended to the same row, in order.
        add_measurements(store, "r-1", [_measurement(store, check_name="late", value=float("inf"))])
        assert [m["check"] for m in store.measurements("r-1")] == ["c0", "c1", "c2", "late", "errors"]
        assert store.measurements("r-1", check="late")[0]["value"] == float("inf")
        # Added again (a write retried after a lost connection): nothing twice.
        add_measurements(store, "r-1", [_measurement(store, check_name="late", value=float("inf"))])
        assert store.measurement_count("r-1") == 5
    assert backend.rows("SELECT policy, tick FROM ticks ORDER BY id") == [("errors", 0), ("other", 0)]
    assert backend.rows("SELECT check_name, status, value, pending FROM measurements WHERE check_name = 'c1'") == [
        ("c1", "pass", 0.01, 0)]
    assert backend.rows("SELECT policy, COUNT(*) FROM measurements GROUP BY policy ORDER BY policy") == [
        ("errors", 4), ("other", 1)]


def test_infinite_and_nan_values_stay_readable_by_sql_and_python(backend):
    inf = float("inf")
    with closing(backend.open()) as store:
        _rollout(store)
        add_measurements(store, "r-1", [_measurement(store, value=inf, threshold=-inf, reference=float("nan"),
                                                    reason="Infinity NaN", evidence={"raw": inf})])
        [row] = store.measurements("r-1")
        assert (row["value"], row["threshold"], row["reference"]) == (inf, -inf, None)
        assert row["reason"] == "Infinity NaN" and row["evidence"] == {"raw": inf}
        assert store.measurement_count("r-1") == 1
    assert backend.rows("SELECT value, threshold, reason FROM measurements") == [(inf, -inf, "Infinity NaN")]


SCHEMA_1_MEASUREMENTS = """
CREATE TABLE measurements (
    id INTEGER PRIMARY KEY AUTOINCREMENT, rollout_id TEXT NOT NULL, phase TEXT NOT NULL,
    tick INTEGER NOT NULL, at REAL NOT NULL, region TEXT NOT NULL, policy TEXT NOT NULL,
    check_name TEXT NOT NULL, status TEXT NOT NULL, value REAL, threshold REAL, reference REAL,
    comparison TEXT, pending INTEGER NOT NULL DEFAULT 0, reason TEXT, query TEXT, evidence TEXT,
    breach_since REAL, first_breach_at REAL, streak INTEGER NOT NULL DEFAULT 0,
    evaluations INTEGER NOT NULL DEFAULT 0, failures INTEGER NOT NULL DEFAULT 0,
    inconclusives INTEGER NOT NULL DEFAULT 0
);
"""


def test_a_schema_1_state_file_is_migrated_with_every_measurement_kept(path):
    path.parent.mkdir(parents=True)
    with closing(_raw(path)) as db:  # what guardrail wrote before evaluations were packed per tick
        db.executescript(SCHEMA_1_MEASUREMENTS + "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
                         "INSERT INTO meta VALUES ('schema_version', '1');")
        rows = [("r-1", "bake:canary", tick, 1000.0 + 30 * tick, region, "errors", check, "pass", 0.01 * tick,
                 '{"series": 1}' if check == "errors" else None) for tick in range(3) for region in ("r3", "r1")
                for check in ("errors", "latency")]
        db.executemany("INSERT INTO measurements (rollout_id, phase, tick, at, region, policy, check_name, status,"
                       " value, evidence) VALUES (?,?,?,?,?,?,?,?,?,?)", rows)
        db.commit()
    with closing(SQLiteStore(path)) as store:
        got = store.measurements("r-1")
        assert [(m["tick"], m["region"], m["check"], m["value"]) for m in got] == [r[2:3] + r[4:5] + r[6:7] + r[8:9]
                                                                                  for r in rows]
        assert got[0]["evidence"] == {"series": 1} and got[1]["evidence"] == {}
        assert store.measurement_count("r-1") == 12
    with closing(_raw(path)) as db:
        assert db.execute("SELECT COUNT(*) FROM ticks").fetchone()[0] == 3  # one per tick of the policy
        assert db.execute("SELECT type FROM sqlite_master WHERE name = 'measurements'").fetchone()[0] == "view"
        assert db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0] == str(SCHEMA_VERSION)


def test_measurements_are_one_per_phase_tick_region_policy_and_check_across_a_resume(backend, tmp_path):
    """A halted bake resumed in the same phase continues at the first tick it lacks: ticks
    0-2 (inconclusive: halt), then 3-5 after ``resume`` (halted again), none twice."""
    work = tmp_path / "engine"
    shutil.copytree(DATA, work)
    plan = yaml.safe_load((work / "plans" / "base.yaml").read_text()) | {"policies": ["../policies/absent.yaml"]}
    (work / "plans" / "absent.yaml").write_text(yaml.safe_dump(plan))
    state = backend.spec
    cli = CliRunner()
    first = cli.invoke(create_app(), ["rollout", str(work / "plans" / "absent.yaml"), "--state", state,
                                      "--output", "json"])
    assert first.exit_code == 3, first.output
    rollout_id = json.loads(first.stdout)["rollout_id"]
    again = cli.invoke(create_app(), ["resume", rollout_id, "--state", state])
    assert again.exit_code == 3, again.output
    ticks = [r[0] for r in backend.rows("SELECT tick FROM measurements WHERE phase = 'bake:canary' ORDER BY id")]
    assert ticks == [0, 1, 2, 3, 4, 5]
    assert backend.rows("SELECT phase, tick, region, policy, check_name, COUNT(*) FROM measurements"
                        " GROUP BY phase, tick, region, policy, check_name HAVING COUNT(*) > 1") == []


def test_a_state_file_from_a_newer_guardrail_is_refused_clearly(path):
    SQLiteStore(path).close()
    with closing(_raw(path)) as db:
        db.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION + 1),))
        db.commit()
    with pytest.raises(StoreError, match=rf"written by a newer guardrail \(schema {SCHEMA_VERSION + 1}\); "
                                         r"upgrade guardrail"):
        SQLiteStore(path)
    result = CliRunner().invoke(create_app(), ["status", "--state", str(path)])
    assert result.exit_code == ExitCode.USAGE, result.output
    assert f"{path} was written by a newer guardrail" in result.stderr and "Traceback" not in result.output


def test_a_file_that_is_not_sqlite_is_a_store_error(path):
    path.parent.mkdir(parents=True)
    path.write_text("this is not a database\n" * 100)
    with pytest.raises(StoreError, match="cannot open state file"):
        SQLiteStore(path)


def test_secrets_given_to_the_redactor_never_reach_the_storage(backend):
    with closing(backend.open(Redactor({SECRET}))) as store:
        _rollout(store)
        leak = f"Authorization: Bearer {SECRET}"
        store.add_event("r-1", 1000.0, "region.deploy_failed", {"detail": leak, "nested": [{"x": leak}],
                                                                "marker": "visible-marker-1"})
        store.set_state("r-1", "failed", reason=f"deploy failed: {leak}")
        store.start_step("r-1", "deploy:r3", 1000.0, {"argv": ["deploy.sh", SECRET]})
        store.finish_step("r-1", "deploy:r3", False, 1001.0, {"outcome": leak})
        add_measurements(store, "r-1", [_measurement(store, reason=leak, evidence={"detail": leak})])
        store.set_baseline("r-1", "r3", "errors", "errors", 1.0, (0.0, 1000.0), {"error": leak})
        store.save_incident({"id": "INC-r-1", "rollout_id": "r-1", "status": "identified", "decision": leak})
        store.enqueue_delivery({"id": "INC-r-1", "status": "identified", "decision": leak, "revision": 1}, "webhook")
        [queued] = store.deliveries(incident_id="INC-r-1")
        store.record_delivery(queued["id"], "pending", f"401 for {SECRET}")
        assert store.events("r-1")[0]["detail"] == "Authorization: Bearer ***"
        assert store.rollout("r-1")["reason"] == "deploy failed: Authorization: Bearer ***"
    written = backend.written()
    assert b"visible-marker-1" in written  # the raw bytes are readable: the check below means something
    assert SECRET.encode() not in written


def test_a_secret_from_the_environment_never_reaches_the_store_the_journal_or_the_output(tmp_path, backend):
    work = tmp_path / "engine"
    shutil.copytree(DATA, work)
    plan = yaml.safe_load((work / "plans" / "base.yaml").read_text())
    plan["deploy"] = {"plugin": "command", "with": {
        "deploy": [sys.executable, "../scripts/leaky_deploy.py", "{{region}}", "--token=${env:DEPLOY_TOKEN}"],
        "rollback": [sys.executable, "../scripts/record_argv.py", "{{region}}", "${env:DEPLOY_TOKEN}"],
        "env": {"ARGV_LOG": str(tmp_path / "argv.jsonl")}}}
    (work / "plans" / "leaky.yaml").write_text(yaml.safe_dump(plan))
    result = CliRunner().invoke(create_app(), ["rollout", str(work / "plans" / "leaky.yaml"), "--state", backend.spec],
                                env={"DEPLOY_TOKEN": SECRET})
    assert result.exit_code == 1, result.output  # the deploy failed, the rollback ran, recovery verified
    # The secret did reach the programs (as their argument) ...
    assert json.loads((tmp_path / "argv.jsonl").read_text())["argv"] == ["r3", SECRET]
    # ... and the failure detail was kept, with the secret masked.
    with closing(backend.open()) as store:
        [row] = store.rollouts()
        detail = store.step(row["id"], "deploy:r3")["detail"]["outcome"]
        assert "deploy failed with arguments" in detail and "--token=***" in detail
        assert store.incident(row["id"])["status"] == "resolved"
    assert SECRET not in result.output
    journal = tmp_path / "state" / "incidents.jsonl"
    assert journal.exists() and SECRET not in journal.read_text()
    written = backend.written()
    assert b"deploy failed with arguments" in written  # the grep below reads what was stored
    assert SECRET.encode() not in written


# -- the rest of the protocol, on every backend --------------------------------------------


def test_a_store_from_a_newer_guardrail_is_refused_on_every_backend(backend):
    backend.open().close()
    if backend.name == "sqlite":
        with closing(_raw(backend.path)) as db:
            db.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION + 1),))
            db.commit()
    else:
        backend.rows("UPDATE meta SET value = %s WHERE key = 'schema_version' RETURNING key", (str(SCHEMA_VERSION + 1),))
    with pytest.raises(StoreError, match=rf"written by a newer guardrail \(schema {SCHEMA_VERSION + 1}\)"):
        backend.open()
    result = CliRunner().invoke(create_app(), ["history", "--state", backend.spec])
    assert result.exit_code == ExitCode.USAGE, result.output
    assert "written by a newer guardrail" in result.stderr and "Traceback" not in result.output


def test_rollouts_requests_events_and_baselines_read_back_as_written(backend):
    with closing(backend.open()) as store:
        _rollout(store, "20260101-000000-aaaaaa", "svc")
        _rollout(store, "20260101-000000-aabbbb", "other")
        assert store.rollout("20260101-000000-aab")["service"] == "other"  # a unique prefix is enough
        with pytest.raises(NotFound, match="ambiguous"):
            store.rollout("20260101-000000-aa")
        with pytest.raises(NotFound, match="no rollout 'nope'"):
            store.rollout("nope")
        assert [r["service"] for r in store.rollouts("svc")] == ["svc"] and len(store.rollouts()) == 2
        rid = "20260101-000000-aaaaaa"
        store.request(rid, "pause", "lunch")
        store.request(rid, "approved", {"main": {"at": 1.0}})
        assert store.requests(rid) == {"pause": "lunch", "approved": {"main": {"at": 1.0}}}
        assert store.rollout(rid)["requests"]["pause"] == "lunch"
        store.set_state(rid, "halted", outcome="halted", reason="waiting", finished=False)
        store.set_state(rid, "promoted", outcome="promoted", finished=True)
        row = store.rollout(rid)
        # the reason of this decision: a promotion after a halt keeps no reason of the halt
        assert (row["state"], row["outcome"], row["reason"]) == ("promoted", "promoted", None)
        assert row["finished_at"] is not None
        first = store.add_event(rid, 1000.0, "a.b", {"x": 1})
        store.add_event(rid, 1005.0, "c.d", {"y": [1, 2]})
        store.add_event(rid, 1002.0, "a.b", {"x": 2})
        assert first["seq"] > 0 and [e["kind"] for e in store.events(rid)] == ["a.b", "c.d", "a.b"]
        assert [e["x"] for e in store.events(rid, "a.b")] == [1, 2]
        assert [e["kind"] for e in store.events(rid, ("c.d", "none"))] == ["c.d"]
        add_measurements(store, rid, [_measurement(store, at=1010.0)])
        assert store.last_time(rid) == 1010.0 and store.last_time("nope") is None
        store.set_baseline(rid, "r3", "errors", "errors", 0.5, (0.0, 900.0), {"q": 1})
        store.set_baseline(rid, "r3", "errors", "errors", 0.7, (0.0, 950.0), {"q": 2})
        [(key, base)] = store.baselines(rid).items()
        assert key == ("r3", "errors", "errors") and (base["value"], base["window_end"], base["evidence"]) == (
            0.7, 950.0, {"q": 2})
        store.update_step_detail(rid, "missing", {"x": 1})  # no such step: nothing happens
        assert store.step(rid, "missing") is None


def test_report_aggregates_agree_with_the_rows(backend):
    with closing(backend.open()) as store:
        _rollout(store)
        add_measurements(store, "r-1", [_measurement(store, tick=t, at=1000.0 + 30 * t, status=s, value=v, pending=p)
                                       for t, (s, v, p) in enumerate([("pass", 1.0, 0), ("pass", 3.0, 1),
                                                                      ("fail", 5.0, 0), ("inconclusive", None, 0)])])
        [group] = store.verdict_groups("r-1")
        ids = [m["id"] for m in store.measurements("r-1")]
        assert group[:4] == ("bake:canary", "r3", "errors", "errors")
        assert tuple(group[4:]) == (4, 1000.0, 1090.0, 1, 1, ids[2], ids[3], 1030.0)
        buckets = store.measurement_buckets("r-1", 1000.0, 60.0, 2)
        assert [tuple(b[:9]) for b in buckets] == [("errors", "errors", "r3", 0, 1000.0, 1030.0, 1.0, 3.0, 1),
                                                   ("errors", "errors", "r3", 1, 1060.0, 1090.0, 5.0, 5.0, 3)]
        assert set(store.measurements_by_id([ids[1], ids[3]])) == {ids[1], ids[3]}


def test_the_outbox_queues_each_revision_once_in_order(backend):
    with closing(backend.open()) as store:
        _rollout(store)
        incident = {"id": "INC-1", "rollout_id": "r-1", "status": "identified", "revision": 1}
        store.save_incident(incident)
        store.save_incident(incident | {"status": "resolved", "revision": 2})
        assert store.incident("INC-1")["status"] == "resolved" and store.incident("r-1")["id"] == "INC-1"
        assert [i["id"] for i in store.incidents()] == ["INC-1"]
        with pytest.raises(NotFound):
            store.incident("INC-2")
        assert store.enqueue_delivery(incident, "slack") is True
        assert store.enqueue_delivery(incident, "slack") is False  # repeated after a crash: nothing new
        assert store.enqueue_delivery(incident | {"revision": 2, "status": "resolved"}, "slack") is True
        assert store.enqueue_delivery(incident, "webhook") is True
        [spooled] = store.deliveries("pending", sink="webhook")
        store.record_delivery(spooled["id"], "pending", "503")  # a failed attempt: spooled for later
        rows = store.deliveries("pending", sink="slack")
        assert [r["payload"]["revision"] for r in rows] == [1, 2] and rows[0]["id"] < rows[1]["id"]
        store.record_delivery(rows[0]["id"], "delivered")
        store.record_delivery(rows[1]["id"], "rejected", "400 bad")
        assert [r["status"] for r in store.deliveries(incident_id="INC-1", sink="slack")] == ["delivered", "rejected"]
        assert store.requeue_rejected("INC-1") == 1
        assert [r["attempts"] for r in store.deliveries("pending")] == [1, 1]  # slack's retry, the spooled one
        assert store.sink_ref("INC-1", "slack") is None
        store.set_sink_ref("INC-1", "slack", {"ts": "1.2"})
        store.set_sink_ref("INC-1", "slack", {"ts": "1.3"})
        assert store.sink_ref("INC-1", "slack") == {"ts": "1.3"}


def test_a_claim_lapses_and_a_late_release_changes_nothing(backend):
    with closing(backend.open()) as store:
        assert store.claim_chain("INC-1", "slack", "dead", lease=0.3) is None
        assert store.claim_chain("INC-1", "slack", "alive", lease=60)["holder"] == "dead"
        assert store.claim_chain("INC-1", "slack", "dead", lease=0.3) is None  # its holder renews it
        time.sleep(0.5)
        assert store.claim_chain("INC-1", "slack", "alive", lease=60) is None  # lapsed: taken over
        store.release_chain("INC-1", "slack", "dead")
        assert store.claim_chain("INC-1", "slack", "dead", lease=60)["holder"] == "alive"
        store.release_chain("INC-1", "slack", "alive")
        assert store.claim_chain("INC-1", "slack", "dead", lease=60) is None


def test_a_lock_is_held_renewed_taken_over_when_stale_and_released(backend):
    with closing(backend.open()) as store:
        assert store.try_lock("svc", "r-1", "a:1", "a", 1, 60, lambda row: False) is None
        held = store.try_lock("svc", "r-2", "b:2", "b", 2, 60, lambda row: False)
        assert (held["rollout_id"], held["holder"], held["host"], held["pid"]) == ("r-1", "a:1", "a", 1)
        assert abs(held["expires_at"] - (time.time() + 60)) < 5  # in this machine's clock
        assert store.renew_lock("svc", "r-1", "a:1", 120) is True
        assert store.renew_lock("svc", "r-1", "other", 120) is False
        seen = []
        assert store.try_lock("svc", "r-2", "b:2", "b", 2, 60, lambda row: seen.append(row) or True) is None
        assert seen[0]["rollout_id"] == "r-1" and store.lock("svc")["holder"] == "b:2"
        assert store.release_lock("svc", "r-1") is False  # not r-1's any more
        assert store.release_lock("svc", "r-2", "b:2") is True and store.lock("svc") is None
        store.try_lock("svc", "r-3", "c:3", "c", 3, 60, lambda row: False)
        assert store.release_lock("svc") is True  # `guardrail unlock`


def _race_for_lock(spec, barrier, results, n):
    store = open_store(spec)
    try:
        barrier.wait()
        held = store.try_lock("svc", f"r-{n}", f"host{n}:{n}", f"host{n}", n, 60, lambda row: False)
        results.put(n if held is None else None)
    finally:
        store.close()


def test_processes_racing_for_one_lock_on_separate_connections_let_exactly_one_in(backend):
    backend.open().close()
    context = multiprocessing.get_context("spawn")
    for round_ in range(3):
        barrier, results = context.Barrier(4), context.Queue()
        procs = [context.Process(target=_race_for_lock, args=(backend.spec, barrier, results, n)) for n in range(4)]
        for proc in procs:
            proc.start()
        winners = [w for w in (results.get(timeout=120) for _ in procs) if w is not None]
        for proc in procs:
            proc.join(timeout=60)
        assert len(winners) == 1, winners
        with closing(backend.open()) as store:
            assert store.lock("svc")["rollout_id"] == f"r-{winners[0]}"
            store.release_lock("svc")

"""The SQLite state store: WAL, an idempotent schema, steps committed before and after
their side effect, one measurement per (phase, tick, region, policy, check), a state
file from a newer guardrail refused, and secrets that never reach the file."""

from __future__ import annotations

import json
import multiprocessing
import shutil
import sqlite3
import sys
from contextlib import closing
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from guardrail.cli import create_app
from guardrail.errors import ExitCode, StoreError
from guardrail.secrets import Redactor
from guardrail.state.sqlite import SCHEMA_VERSION, SQLiteStore

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


def test_a_step_is_committed_as_started_before_and_finished_after(path):
    with closing(SQLiteStore(path)) as store, closing(_raw(path)) as reader:
        _rollout(store)
        store.start_step("r-1", "deploy:r3", 1000.0, {"region": "r3"})
        # Visible to another connection at once: committed, not pending in a transaction.
        assert reader.execute("SELECT status, attempts, finished_at FROM steps").fetchall() == [("started", 1, None)]
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


def test_measurements_are_stored_with_the_judges_memory_and_read_back_by_phase(path):
    with closing(SQLiteStore(path)) as store:
        _rollout(store)
        store.add_measurements("r-1", [_measurement(store), _measurement(store, region="r1"),
                                       _measurement(store, tick=1, at=1030.0, status="inconclusive", value=None,
                                                    streak=1, reason="no data")])
        store.add_measurements("r-1", [_measurement(store, phase="recovery")])
        assert store.measurement_count("r-1") == 4
        rows = store.measurements("r-1", "bake:canary", region="r3", check="errors")
        assert [(m["tick"], m["status"], m["streak"], m["pending"]) for m in rows] == [
            (0, "pass", 0, False), (1, "inconclusive", 1, False)]
        assert rows[0]["query"] == 'max(errors_ratio{region="r3"})' and rows[0]["evidence"] == {"series": 1}
        assert [m["phase"] for m in store.measurements("r-1", "recovery")] == ["recovery"]


def test_a_tick_is_one_row_and_the_view_shows_each_evaluation(path):
    with closing(SQLiteStore(path)) as store:
        _rollout(store)
        store.add_measurements("r-1", [_measurement(store, check_name=f"c{i}") for i in range(3)]
                               + [_measurement(store, policy="other")])
        # A phase resumed with more items (its plan changed before an abort) completes the
        # tick it had stored: the new evaluations are appended to the same row, in order.
        store.add_measurements("r-1", [_measurement(store, check_name="late", value=float("inf"))])
        assert [m["check"] for m in store.measurements("r-1")] == ["c0", "c1", "c2", "late", "errors"]
        assert store.measurements("r-1", check="late")[0]["value"] == float("inf")
    with closing(_raw(path)) as db:
        assert db.execute("SELECT policy, tick, json_array_length(evaluations) FROM ticks ORDER BY id").fetchall() == [
            ("errors", 0, 4), ("other", 0, 1)]
        assert db.execute("SELECT check_name, status, value, pending, json_extract(evidence, '$.series')"
                          " FROM measurements WHERE check_name = 'c1'").fetchall() == [("c1", "pass", 0.01, 0, 1)]


def test_infinite_and_nan_values_stay_readable_by_sqlite_and_python(path):
    inf = float("inf")
    with closing(SQLiteStore(path)) as store:
        _rollout(store)
        store.add_measurements("r-1", [_measurement(store, value=inf, threshold=-inf, reference=float("nan"),
                                                    reason="Infinity NaN", evidence={"raw": inf})])
        [row] = store.measurements("r-1")
        assert (row["value"], row["threshold"], row["reference"]) == (inf, -inf, None)
        assert row["reason"] == "Infinity NaN" and row["evidence"] == {"raw": inf}
        assert store.measurement_count("r-1") == 1
    with closing(_raw(path)) as db:
        assert db.execute("SELECT value, threshold, reason FROM measurements").fetchone() == (inf, -inf, "Infinity NaN")


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


def test_measurements_are_one_per_phase_tick_region_policy_and_check_across_a_resume(tmp_path):
    """A halted bake resumed in the same phase continues at the first tick it lacks: ticks
    0-2 (inconclusive: halt), then 3-5 after ``resume`` (halted again), none twice."""
    work = tmp_path / "engine"
    shutil.copytree(DATA, work)
    plan = yaml.safe_load((work / "plans" / "base.yaml").read_text()) | {"policies": ["../policies/absent.yaml"]}
    (work / "plans" / "absent.yaml").write_text(yaml.safe_dump(plan))
    state = tmp_path / "state" / "state.db"
    cli = CliRunner()
    first = cli.invoke(create_app(), ["rollout", str(work / "plans" / "absent.yaml"), "--state", str(state),
                                      "--output", "json"])
    assert first.exit_code == 3, first.output
    rollout_id = json.loads(first.stdout)["rollout_id"]
    again = cli.invoke(create_app(), ["resume", rollout_id, "--state", str(state)])
    assert again.exit_code == 3, again.output
    with closing(_raw(state)) as db:
        ticks = [r[0] for r in db.execute("SELECT tick FROM measurements WHERE phase = 'bake:canary' ORDER BY id")]
        assert ticks == [0, 1, 2, 3, 4, 5]
        assert db.execute("SELECT phase, tick, region, policy, check_name, COUNT(*) FROM measurements"
                          " GROUP BY phase, tick, region, policy, check_name HAVING COUNT(*) > 1").fetchall() == []


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


def _everything_written(path: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(path.parent.iterdir()) if p.is_file())


def test_secrets_given_to_the_redactor_never_reach_the_file(path):
    with closing(SQLiteStore(path, Redactor({SECRET}))) as store:
        _rollout(store)
        leak = f"Authorization: Bearer {SECRET}"
        store.add_event("r-1", 1000.0, "region.deploy_failed", {"detail": leak, "nested": [{"x": leak}],
                                                                "marker": "visible-marker-1"})
        store.set_state("r-1", "failed", reason=f"deploy failed: {leak}")
        store.start_step("r-1", "deploy:r3", 1000.0, {"argv": ["deploy.sh", SECRET]})
        store.finish_step("r-1", "deploy:r3", False, 1001.0, {"outcome": leak})
        store.add_measurements("r-1", [_measurement(store, reason=leak, evidence={"detail": leak})])
        store.set_baseline("r-1", "r3", "errors", "errors", 1.0, (0.0, 1000.0), {"error": leak})
        store.save_incident({"id": "INC-r-1", "rollout_id": "r-1", "status": "identified", "decision": leak})
        store.spool({"id": "INC-r-1", "status": "identified", "decision": leak}, "webhook", f"401 for {SECRET}")
        assert store.events("r-1")[0]["detail"] == "Authorization: Bearer ***"
        assert store.rollout("r-1")["reason"] == "deploy failed: Authorization: Bearer ***"
    written = _everything_written(path)
    assert b"visible-marker-1" in written  # the raw bytes are readable: the check below means something
    assert SECRET.encode() not in written


def test_a_secret_from_the_environment_never_reaches_the_state_file_the_journal_or_the_output(tmp_path):
    work = tmp_path / "engine"
    shutil.copytree(DATA, work)
    plan = yaml.safe_load((work / "plans" / "base.yaml").read_text())
    plan["deploy"] = {"plugin": "command", "with": {
        "deploy": [sys.executable, "../scripts/leaky_deploy.py", "{{region}}", "--token=${env:DEPLOY_TOKEN}"],
        "rollback": [sys.executable, "../scripts/record_argv.py", "{{region}}", "${env:DEPLOY_TOKEN}"],
        "env": {"ARGV_LOG": str(tmp_path / "argv.jsonl")}}}
    (work / "plans" / "leaky.yaml").write_text(yaml.safe_dump(plan))
    state = tmp_path / "state" / "state.db"
    result = CliRunner().invoke(create_app(), ["rollout", str(work / "plans" / "leaky.yaml"), "--state", str(state)],
                                env={"DEPLOY_TOKEN": SECRET})
    assert result.exit_code == 1, result.output  # the deploy failed, the rollback ran, recovery verified
    # The secret did reach the programs (as their argument) ...
    assert json.loads((tmp_path / "argv.jsonl").read_text())["argv"] == ["r3", SECRET]
    # ... and the failure detail was kept, with the secret masked.
    with closing(SQLiteStore(state)) as store:
        [row] = store.rollouts()
        detail = store.step(row["id"], "deploy:r3")["detail"]["outcome"]
        assert "deploy failed with arguments" in detail and "--token=***" in detail
        assert store.incident(row["id"])["status"] == "resolved"
    assert SECRET not in result.output
    assert (state.parent / "incidents.jsonl").exists()
    assert SECRET.encode() not in _everything_written(state)

"""The state store: SQLite (one file, WAL). Its schema is the audit trail.

Every write is its own committed transaction, made *before* the side effect it
announces, so a process killed at any instant leaves a store from which
``guardrail resume`` continues without deploying or rolling back twice:

- ``rollouts``: one row per rollout, its state and outcome;
- ``events``: every state transition and decision, in order;
- ``steps``: side effects (deploy, rollback, action, notification) by idempotency
  key, ``started`` before the call and ``done``/``failed`` after it;
- ``ticks``: every check evaluation with its evidence, packed one row per policy and
  tick (the ``measurements`` view shows one row per evaluation);
- ``baselines``: pre-change reference values, captured before a wave deploys;
- ``incidents``, ``sink_refs``, ``deliveries`` (the spool of notifications not yet
  delivered) and ``delivery_claims``: the outbox, in ``store_outbox``;
- ``locks``: one rollout per service.

``SQLiteStore`` implements ``protocol.Store``, as ``PostgresStore`` does. Everything written passes through a ``Redactor`` so secrets from
``${env:...}`` never reach the file.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterable, Iterator

from guardrail.errors import NotFound, StoreError
from guardrail.secrets import Redactor
from guardrail.state.outbox import OutboxStore
from guardrail.state.packing import (MEASUREMENT_COLUMNS, _dumps, _json_text, redact_ticks, ticks_of, unpack_tick,
                                     unpack_ticks)
from guardrail.state.schema import SCHEMA as _SCHEMA, SCHEMA_VERSION, migrate


def _use_wal(db: sqlite3.Connection, timeout: float = 30.0) -> None:
    """Switch a state file to WAL. Two processes opening a new file at once (two CI jobs)
    collide here, and SQLite answers "database is locked" at once rather than waiting
    like other statements: try again until ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            db.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


class SQLiteStore(OutboxStore):
    """The SQLite implementation of the store. Safe to share between threads."""

    def __init__(self, path: str | Path, redactor: Redactor | None = None):
        self.path = Path(path)
        self.location = str(self.path)
        self.state_dir = self.path.absolute().parent
        self.redactor = redactor or Redactor()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
            self._db.row_factory = sqlite3.Row
            _use_wal(self._db)
            # NORMAL in WAL mode: a commit survives a killed process (the case that
            # matters here); only an OS crash may lose the last transactions.
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._db.executescript(_SCHEMA)
            row = self._db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
            found = SCHEMA_VERSION if row is None else int(row[0])
            if found > SCHEMA_VERSION:
                raise StoreError(f"{self.path} was written by a newer guardrail (schema {row[0]}); upgrade guardrail")
            if row is None or found < SCHEMA_VERSION:
                migrate(self._db, found)
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"cannot open state file {self.path}: {exc}") from None
        self._lock = threading.RLock()

    # -- plumbing --------------------------------------------------------------------

    def _write(self, sql: str, args: Iterable[Any] = ()) -> sqlite3.Cursor:
        with self._lock:
            return self._db.execute(sql, tuple(args))

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (taken at once, so a read inside it is not overtaken)."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _many(self, sql: str, rows: list[tuple]) -> None:
        with self._transaction() as db:
            db.executemany(sql, rows)

    def _read(self, sql: str, args: Iterable[Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._db.execute(sql, tuple(args)).fetchall()

    def _clean(self, value: Any) -> str:
        return _dumps(self.redactor.redact(value))

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- rollouts --------------------------------------------------------------------

    def create_rollout(self, row: dict[str, Any]) -> None:
        now = time.time()
        self._write(
            "INSERT INTO rollouts (id, service, version, previous, plan_path, plan_digest, clock, clock_start, state,"
            " created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            (row["id"], row["service"], row["version"], row["previous"], row["plan_path"], row["plan_digest"],
             row["clock"], row["clock_start"], "pending", now, now),
        )

    def rollout(self, rollout_id: str) -> dict[str, Any]:
        rows = self._read("SELECT * FROM rollouts WHERE id = ?", (rollout_id,))
        if not rows:
            rows = self._read("SELECT * FROM rollouts WHERE id LIKE ? ORDER BY created_at DESC", (rollout_id + "%",))
            if len(rows) != 1:
                raise NotFound(f"no rollout {rollout_id!r} in {self.path}" if not rows
                               else f"rollout id {rollout_id!r} is ambiguous; give more characters")
        out = dict(rows[0])
        out["requests"] = json.loads(out["requests"])
        return out

    def rollouts(self, service: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        if service:
            rows = self._read("SELECT * FROM rollouts WHERE service = ? ORDER BY created_at DESC LIMIT ?", (service, limit))
        else:
            rows = self._read("SELECT * FROM rollouts ORDER BY created_at DESC LIMIT ?", (limit,))
        return [dict(r) | {"requests": json.loads(r["requests"])} for r in rows]

    def set_state(self, rollout_id: str, state: str, *, outcome: str | None = None, reason: str | None = None,
                  finished: bool = False) -> None:
        """The rollout's state now, with the outcome and reason of *this* decision: a
        promotion after a halt has no reason left over from the halt."""
        now = time.time()
        self._write(
            "UPDATE rollouts SET state = ?, outcome = ?, reason = ?,"
            " updated_at = ?, finished_at = CASE WHEN ? THEN ? ELSE finished_at END WHERE id = ?",
            (state, outcome, self.redactor.redact(reason), now, finished, now, rollout_id),
        )

    def reopen(self, rollout_id: str) -> None:
        """A finished rollout runs again (the rollback of a promoted release): no outcome yet."""
        self._write("UPDATE rollouts SET outcome = NULL, finished_at = NULL, updated_at = ? WHERE id = ?",
                    (time.time(), rollout_id))

    def request(self, rollout_id: str, name: str, value: Any) -> None:
        """Record a person's request (pause, abort, approval) for the engine to see."""
        with self._transaction() as db:
            row = db.execute("SELECT requests FROM rollouts WHERE id = ?", (rollout_id,)).fetchone()
            requests = json.loads(row[0]) if row else {}
            requests[name] = value
            db.execute("UPDATE rollouts SET requests = ? WHERE id = ?", (_dumps(requests), rollout_id))

    def requests(self, rollout_id: str) -> dict[str, Any]:
        row = self._read("SELECT requests FROM rollouts WHERE id = ?", (rollout_id,))
        return json.loads(row[0][0]) if row else {}

    # -- events ----------------------------------------------------------------------

    def add_event(self, rollout_id: str, at: float, kind: str, data: dict[str, Any]) -> dict[str, Any]:
        clean = self.redactor.redact(data)
        cur = self._write("INSERT INTO events (rollout_id, at, kind, data) VALUES (?,?,?,?)",
                          (rollout_id, at, kind, _dumps(clean)))
        return {"seq": cur.lastrowid, "rollout_id": rollout_id, "at": at, "kind": kind, **clean}

    def events(self, rollout_id: str, kind: str | tuple[str, ...] | None = None) -> list[dict[str, Any]]:
        """The rollout's events in order; only those of ``kind`` (one, or any of several)."""
        sql, args = "SELECT * FROM events WHERE rollout_id = ?", [rollout_id]
        if kind:
            kinds = (kind,) if isinstance(kind, str) else kind
            sql, args = sql + f" AND kind IN ({','.join('?' * len(kinds))})", args + list(kinds)
        rows = self._read(sql + " ORDER BY seq", args)
        return [{"seq": r["seq"], "at": r["at"], "kind": r["kind"], **json.loads(r["data"])} for r in rows]

    def last_time(self, rollout_id: str) -> float | None:
        """The rollout clock's latest recorded time (events and measurements). A person's act
        (``person.acted``) is dated on the wall clock and is not the rollout's progress: a
        halted bake's gap runs from the halt, not from an unlock or an approval."""
        row = self._read("SELECT MAX(t) FROM (SELECT MAX(at) AS t FROM events WHERE rollout_id = ?"
                         " AND kind != 'person.acted'"
                         " UNION ALL SELECT MAX(at) FROM ticks WHERE rollout_id = ?)", (rollout_id, rollout_id))
        return row[0][0] if row else None

    # -- steps (idempotent side effects) ---------------------------------------------

    def step(self, rollout_id: str, key: str) -> dict[str, Any] | None:
        rows = self._read("SELECT * FROM steps WHERE rollout_id = ? AND key = ?", (rollout_id, key))
        if not rows:
            return None
        out = dict(rows[0])
        out["detail"] = json.loads(out["detail"]) if out["detail"] else None
        return out

    def steps(self, rollout_id: str, prefix: str = "") -> list[dict[str, Any]]:
        rows = self._read("SELECT * FROM steps WHERE rollout_id = ? AND key LIKE ? ORDER BY started_at, key",
                          (rollout_id, prefix + "%"))
        return [dict(r) | {"detail": json.loads(r["detail"]) if r["detail"] else None} for r in rows]

    def start_step(self, rollout_id: str, key: str, at: float, detail: Any = None) -> None:
        """Committed before the side effect; a second start (after a crash) counts an attempt."""
        self._write(
            "INSERT INTO steps (rollout_id, key, status, started_at, detail) VALUES (?,?,?,?,?)"
            " ON CONFLICT (rollout_id, key) DO UPDATE SET attempts = attempts + 1, status = 'started'",
            (rollout_id, key, "started", at, self._clean(detail)),
        )

    def update_step_detail(self, rollout_id: str, key: str, detail: Any) -> None:
        self._write("UPDATE steps SET detail = ? WHERE rollout_id = ? AND key = ?", (self._clean(detail), rollout_id, key))

    def finish_step(self, rollout_id: str, key: str, ok: bool, at: float, detail: Any = None) -> None:
        self._write("UPDATE steps SET status = ?, finished_at = ?, detail = ? WHERE rollout_id = ? AND key = ?",
                    ("done" if ok else "failed", at, self._clean(detail), rollout_id, key))

    # -- measurements and baselines ----------------------------------------------------

    MEASUREMENT_COLUMNS = MEASUREMENT_COLUMNS

    def add_ticks(self, rollout_id: str, ticks: list[tuple[str, str, int, float, list[list]]],
                  coverage: list[tuple] = ()) -> None:
        """Store evaluation ticks in one transaction: ``(phase, policy, tick, at, evaluations)``,
        each evaluation a list in the order of ``store_schema.PACKED`` (``evidence`` a dict
        or None). Evaluations of a tick already stored are appended to it when it lacks
        them (by region and check): a phase resumed with more items (a plan changed before
        an abort) completes its stored ticks, and a repeated call adds nothing.
        ``coverage``: the covered time after these ticks, ``(phase, region, policy, check,
        covered, uncovered, spans, applies)``, in the same transaction."""
        redact_ticks(self.redactor, ticks)
        with self._transaction() as db:
            db.executemany("INSERT INTO ticks (rollout_id, phase, policy, tick, at, evaluations) VALUES (?,?,?,?,?,?)"
                           " ON CONFLICT (rollout_id, phase, policy, tick) DO UPDATE SET evaluations = ("
                           "SELECT json_group_array(json(v)) FROM (SELECT a.value AS v FROM json_each(ticks.evaluations) a"
                           " UNION ALL SELECT b.value FROM json_each(excluded.evaluations) b WHERE NOT EXISTS ("
                           "SELECT 1 FROM json_each(ticks.evaluations) c WHERE json_extract(c.value, '$[0]') ="
                           " json_extract(b.value, '$[0]') AND json_extract(c.value, '$[1]') ="
                           " json_extract(b.value, '$[1]'))))",
                           [(rollout_id, phase, policy, tick, at, _json_text(evaluations))
                            for phase, policy, tick, at, evaluations in ticks])
            if coverage:
                db.executemany("INSERT OR REPLACE INTO coverage VALUES (?,?,?,?,?,?,?,?,?)",
                               [(rollout_id, phase, region, policy, check, covered, uncovered, json.dumps(spans),
                                 int(applies)) for phase, region, policy, check, covered, uncovered, spans, applies
                                in coverage])

    def coverage(self, rollout_id: str, phase: str | None = None) -> list[dict[str, Any]]:
        """Covered time per phase, region, policy and check (``judging.coverage``)."""
        sql, args = "SELECT * FROM coverage WHERE rollout_id = ?", [rollout_id]
        if phase is not None:
            sql, args = sql + " AND phase = ?", args + [phase]
        return [dict(r) | {"check": r["check_name"], "spans": json.loads(r["spans"]), "applies": bool(r["applies"])}
                for r in self._read(sql + " ORDER BY phase, region, policy, check_name", args)]

    def measurements(self, rollout_id: str, phase: str | None = None, *, region: str | None = None,
                     check: str | None = None) -> list[dict[str, Any]]:
        """Every evaluation, in the order stored, as a dict of ``MEASUREMENT_COLUMNS``
        plus ``id``, ``rollout_id`` and ``check``."""
        sql, args = "SELECT * FROM ticks WHERE rollout_id = ?", [rollout_id]
        if phase is not None:
            sql, args = sql + " AND phase = ?", args + [phase]
        return unpack_ticks(self._read(sql + " ORDER BY id", args), region=region, check=check)

    def measurements_by_id(self, ids: Iterable[int]) -> dict[int, dict[str, Any]]:
        """The evaluations with these ids (as the ``measurements`` view numbers them)."""
        wanted = ticks_of(ids)
        out: dict[int, dict[str, Any]] = {}
        keys = sorted(wanted)
        for start in range(0, len(keys), 500):
            chunk = keys[start:start + 500]
            for tick in self._read(f"SELECT * FROM ticks WHERE id IN ({','.join('?' * len(chunk))})", chunk):
                out.update((row["id"], row) for row in unpack_tick(tick) if row["id"] in wanted[tick["id"]])
        return out

    def measurement_count(self, rollout_id: str) -> int:
        row = self._read("SELECT SUM(json_array_length(evaluations)) FROM ticks WHERE rollout_id = ?", (rollout_id,))
        return row[0][0] or 0

    def verdict_groups(self, rollout_id: str) -> list[tuple]:
        return [tuple(r) for r in self._read(_GROUPS, (rollout_id,))]

    def measurement_buckets(self, rollout_id: str, start: float, width: float, count: int) -> list[tuple]:
        return [tuple(r) for r in self._read(_BUCKETS, (start, width, count - 1, rollout_id))]

    def set_baseline(self, rollout_id: str, region: str, policy: str, check: str, value: float | None,
                     window: tuple[float, float], evidence: dict[str, Any]) -> None:
        self._write("INSERT OR REPLACE INTO baselines VALUES (?,?,?,?,?,?,?,?)",
                    (rollout_id, region, policy, check, value, window[0], window[1], self._clean(evidence)))

    def baselines(self, rollout_id: str) -> dict[tuple[str, str, str], dict[str, Any]]:
        rows = self._read("SELECT * FROM baselines WHERE rollout_id = ?", (rollout_id,))
        return {(r["region"], r["policy"], r["check_name"]): dict(r) | {"evidence": json.loads(r["evidence"] or "{}")}
                for r in rows}

    # -- locks -----------------------------------------------------------------------

    def try_lock(self, service: str, rollout_id: str, holder: str, host: str, pid: int, lease: float,
                 stale: callable) -> dict[str, Any] | None:
        """Take the service's lock; return the current holder's row if someone else has it.

        ``stale(row)`` says whether an existing lock may be taken over (its lease
        expired, or its process is gone)."""
        now = time.time()
        with self._transaction() as db:
            row = db.execute("SELECT * FROM locks WHERE service = ?", (service,)).fetchone()
            if row is not None and row["rollout_id"] != rollout_id and not stale(dict(row)):
                return dict(row)
            db.execute("INSERT OR REPLACE INTO locks VALUES (?,?,?,?,?,?,?)",
                       (service, rollout_id, holder, host, pid, now, now + lease))
            return None

    def renew_lock(self, service: str, rollout_id: str, holder: str, lease: float) -> bool:
        """Extend the lease of the lock this holder has; False when it no longer has it."""
        return self._write("UPDATE locks SET expires_at = ? WHERE service = ? AND rollout_id = ? AND holder = ?",
                           (time.time() + lease, service, rollout_id, holder)).rowcount > 0

    def lock(self, service: str) -> dict[str, Any] | None:
        rows = self._read("SELECT * FROM locks WHERE service = ?", (service,))
        return dict(rows[0]) if rows else None

    def release_lock(self, service: str, rollout_id: str | None = None, holder: str | None = None) -> bool:
        """Remove the service's lock: any (``guardrail unlock``), or only this rollout's, or
        only this rollout's held by this holder."""
        return self._write("DELETE FROM locks WHERE service = ? AND (? IS NULL OR rollout_id = ?)"
                           " AND (? IS NULL OR holder = ?)", (service, rollout_id, rollout_id, holder, holder)
                           ).rowcount > 0


# The report's aggregates (``verdict_groups``, ``measurement_buckets``).
_GROUPS = """
SELECT phase, region, policy, check_name, COUNT(*), MIN(at), MAX(at),
       SUM(status = 'fail'), SUM(status = 'inconclusive'),
       MIN(CASE WHEN status = 'fail' THEN id END), MAX(id),
       MIN(CASE WHEN pending = 1 OR status = 'fail' THEN at END)
FROM measurements WHERE rollout_id = ?
GROUP BY phase, region, policy, check_name
ORDER BY phase, region, policy, check_name
"""

_BUCKETS = """
SELECT policy, check_name, region, MIN(CAST((at - ?) / ? AS INTEGER), ?) AS b,
       MIN(at), MAX(at), MIN(value), MAX(value),
       MAX(CASE WHEN status = 'fail' THEN 3 WHEN status = 'inconclusive' THEN 2 WHEN pending = 1 THEN 1 ELSE 0 END),
       AVG(threshold), AVG(reference)
FROM measurements WHERE rollout_id = ?
GROUP BY policy, check_name, region, b
ORDER BY policy, check_name, region, b
"""

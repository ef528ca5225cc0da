"""The state store on PostgreSQL: one database that every CI runner shares, so locks,
``resume``, ``history`` and reports work across machines.

The tables are SQLite's (``schema.POSTGRES_SCHEMA``), created or upgraded on open
under a transaction-scoped advisory lock (two runners opening a new database at once
do not both run its DDL). Everything written passes through the ``Redactor`` first.

Coordination uses row locks only, inside one transaction each: a lock or a delivery
claim is an ``INSERT ... ON CONFLICT DO NOTHING`` or a ``SELECT ... FOR UPDATE`` of its
row, decided and written before COMMIT. Nothing lives in a session (no session-level
advisory locks, no temporary tables, no prepared statements kept across transactions),
so the store works behind PgBouncer in transaction pooling and through a restart: a lock
is a row with a lease, not a connection that must stay open. Lease times are the
database's clock (``clock_timestamp()``), so runners whose clocks drift agree on when
a lease expires; rows handed to callers are shifted to this machine's clock.

Connections, deadlines and retries through an outage: ``pgconn``.
"""

from __future__ import annotations

import json
import os
import time
import weakref
from pathlib import Path
from typing import Any, Callable, Iterable

import psycopg
from psycopg.rows import dict_row

from guardrail.errors import NotFound, StoreError
from guardrail.secrets import Redactor
from guardrail.state.pgconn import Database
from guardrail.state.postgres_outbox import PostgresOutbox
from guardrail.state.schema import PACKED, POSTGRES_MIGRATIONS, SCHEMA_VERSION
from guardrail.state.packing import (MEASUREMENT_COLUMNS, _dumps, _json_text, redact_ticks, ticks_of, unpack_tick,
                                     unpack_ticks)

_REGION, _CHECK = PACKED.index("region"), PACKED.index("check_name")
_NOW = "extract(epoch from clock_timestamp())::float8"
MIGRATION_LOCK = 0x67726472  # "grdr": the advisory lock key schema changes are made under
TOKEN_DAYS = 7
"""Write tokens are kept this long: far longer than any retry."""


class PostgresStore(PostgresOutbox):
    """The PostgreSQL implementation of the store. Safe to share between threads."""

    MEASUREMENT_COLUMNS = MEASUREMENT_COLUMNS

    def __init__(self, url: str, redactor: Redactor | None = None, *, environ: dict[str, str] | None = None,
                 migrate: bool = True, retry_for: float | None = None, timeout: float | None = None):
        self.redactor = redactor or Redactor()
        self.db = Database(url, self.redactor, environ=environ, retry_for=retry_for, timeout=timeout)
        # A store dropped without close() closes its pool here, in the thread that dropped
        # it: left to the garbage collector, the pool may be finalised in one of its own
        # worker threads, which cannot join themselves.
        self._closer = weakref.finalize(self, self.db.close)
        self.location = self.db.location
        env = os.environ if environ is None else environ
        self.state_dir = Path(env.get("GUARDRAIL_STATE_DIR") or Path.cwd()).absolute()
        try:
            found = self.db.run(self._migrate if migrate else self._version)
        except BaseException:
            self.db.close()
            raise
        if found is None or found < SCHEMA_VERSION:
            self.db.close()
            have = "has no guardrail tables yet" if found is None else f"has schema {found}, older than {SCHEMA_VERSION}"
            raise StoreError(f"the state database {self.location} {have}: create or upgrade them with "
                             f"`guardrail state migrate URL` (or let guardrail do it: GUARDRAIL_STATE_MIGRATE=1)")

    @property
    def path(self) -> str:  # the name SQLiteStore gives its location, for messages
        return self.location

    def close(self) -> None:
        self._closer()

    # -- schema ------------------------------------------------------------------------

    def _version(self, conn: psycopg.Connection) -> int | None:
        if conn.execute("SELECT to_regclass('meta')").fetchone()[0] is None:
            return None
        row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        found = int(row[0]) if row else None
        if found is not None and found > SCHEMA_VERSION:
            raise StoreError(f"{self.location} was written by a newer guardrail (schema {found}); upgrade guardrail")
        return found

    def _migrate(self, conn: psycopg.Connection) -> int:
        """Bring the database to ``SCHEMA_VERSION`` (see ``schema.POSTGRES_MIGRATIONS``)."""
        found = self._version(conn)
        if found == SCHEMA_VERSION:
            return found
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
        found = self._version(conn) or 0  # another runner may have done it while we waited
        for version in sorted(POSTGRES_MIGRATIONS):
            if version > found:
                conn.execute(POSTGRES_MIGRATIONS[version])
        conn.execute("INSERT INTO meta VALUES ('schema_version', %s) ON CONFLICT (key) DO UPDATE SET value ="
                     " excluded.value", (str(SCHEMA_VERSION),))
        conn.execute("DELETE FROM write_tokens WHERE at < %s", (time.time() - TOKEN_DAYS * 86400,))
        return SCHEMA_VERSION

    # -- plumbing ----------------------------------------------------------------------

    def _write(self, sql: str, args: Iterable[Any] = (), *, once: bool = False) -> int:
        return self.db.write(sql, tuple(args), once=once)

    def _read(self, sql: str, args: Iterable[Any] = ()) -> list[dict[str, Any]]:
        return self.db.read(sql, tuple(args))

    def _clean(self, value: Any) -> str:
        return _dumps(self.redactor.redact(value))

    # -- rollouts ----------------------------------------------------------------------

    def create_rollout(self, row: dict[str, Any]) -> None:
        now = time.time()
        self._write(
            "INSERT INTO rollouts (id, service, version, previous, plan_path, plan_digest, clock, clock_start, state,"
            " created_at, updated_at) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s) ON CONFLICT (id) DO NOTHING",
            (row["id"], row["service"], row["version"], row["previous"], row["plan_path"], row["plan_digest"],
             row["clock"], row["clock_start"], "pending", now, now))

    def rollout(self, rollout_id: str) -> dict[str, Any]:
        rows = self._read("SELECT * FROM rollouts WHERE id = %s", (rollout_id,))
        if not rows:
            rows = self._read("SELECT * FROM rollouts WHERE id LIKE %s ORDER BY created_at DESC",
                              (rollout_id.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%",))
            if len(rows) != 1:
                raise NotFound(f"no rollout {rollout_id!r} in {self.location}" if not rows
                               else f"rollout id {rollout_id!r} is ambiguous; give more characters")
        return rows[0] | {"requests": json.loads(rows[0]["requests"])}

    def rollouts(self, service: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        rows = self._read("SELECT * FROM rollouts WHERE %s::text IS NULL OR service = %s"
                          " ORDER BY created_at DESC LIMIT %s", (service or None, service, limit))
        return [r | {"requests": json.loads(r["requests"])} for r in rows]

    def set_state(self, rollout_id: str, state: str, *, outcome: str | None = None, reason: str | None = None,
                  finished: bool = False) -> None:
        """As ``SQLiteStore.set_state``: the outcome and reason of *this* decision."""
        now = time.time()
        self._write(
            "UPDATE rollouts SET state = %s, outcome = %s, reason = %s,"
            " updated_at = %s, finished_at = CASE WHEN %s THEN %s ELSE finished_at END WHERE id = %s",
            (state, outcome, self.redactor.redact(reason), now, finished, now, rollout_id))

    def reopen(self, rollout_id: str) -> None:
        """A finished rollout runs again (the rollback of a promoted release): no outcome yet."""
        self._write("UPDATE rollouts SET outcome = NULL, finished_at = NULL, updated_at = %s WHERE id = %s",
                    (time.time(), rollout_id))

    def request(self, rollout_id: str, name: str, value: Any) -> None:
        def fn(conn: psycopg.Connection) -> None:
            row = conn.execute("SELECT requests FROM rollouts WHERE id = %s FOR UPDATE", (rollout_id,)).fetchone()
            requests = json.loads(row[0]) if row else {}
            requests[name] = value
            conn.execute("UPDATE rollouts SET requests = %s WHERE id = %s", (_dumps(requests), rollout_id))

        self.db.run(fn)

    def requests(self, rollout_id: str) -> dict[str, Any]:
        rows = self.db.tuples("SELECT requests FROM rollouts WHERE id = %s", (rollout_id,))
        return json.loads(rows[0][0]) if rows else {}

    # -- events ------------------------------------------------------------------------

    def add_event(self, rollout_id: str, at: float, kind: str, data: dict[str, Any]) -> dict[str, Any]:
        clean = self.redactor.redact(data)
        seq = self.db.run(lambda conn: conn.execute(
            "INSERT INTO events (rollout_id, at, kind, data) VALUES (%s,%s,%s,%s) RETURNING seq",
            (rollout_id, at, kind, _dumps(clean))).fetchone()[0], once=True)
        return {"seq": seq, "rollout_id": rollout_id, "at": at, "kind": kind, **clean}

    def events(self, rollout_id: str, kind: str | tuple[str, ...] | None = None) -> list[dict[str, Any]]:
        kinds = None if not kind else [kind] if isinstance(kind, str) else list(kind)
        rows = self.db.tuples("SELECT seq, at, kind, data FROM events WHERE rollout_id = %s"
                              " AND (%s::text[] IS NULL OR kind = ANY(%s)) ORDER BY seq", (rollout_id, kinds, kinds))
        return [{"seq": seq, "at": at, "kind": k, **json.loads(data)} for seq, at, k, data in rows]

    def last_time(self, rollout_id: str) -> float | None:
        rows = self.db.tuples("SELECT GREATEST((SELECT MAX(at) FROM events WHERE rollout_id = %s),"
                              " (SELECT MAX(at) FROM ticks WHERE rollout_id = %s))", (rollout_id, rollout_id))
        return rows[0][0] if rows else None

    # -- steps -------------------------------------------------------------------------

    @staticmethod
    def _step(row: dict[str, Any]) -> dict[str, Any]:
        return row | {"detail": json.loads(row["detail"]) if row["detail"] else None}

    def step(self, rollout_id: str, key: str) -> dict[str, Any] | None:
        rows = self._read("SELECT * FROM steps WHERE rollout_id = %s AND key = %s", (rollout_id, key))
        return self._step(rows[0]) if rows else None

    def steps(self, rollout_id: str, prefix: str = "") -> list[dict[str, Any]]:
        rows = self._read("SELECT * FROM steps WHERE rollout_id = %s AND starts_with(key, %s)"
                          ' ORDER BY started_at, key COLLATE "C"', (rollout_id, prefix))
        return [self._step(r) for r in rows]

    def start_step(self, rollout_id: str, key: str, at: float, detail: Any = None) -> None:
        self._write(
            "INSERT INTO steps (rollout_id, key, status, started_at, detail) VALUES (%s,%s,%s,%s,%s)"
            " ON CONFLICT (rollout_id, key) DO UPDATE SET attempts = steps.attempts + 1, status = 'started'",
            (rollout_id, key, "started", at, self._clean(detail)), once=True)

    def update_step_detail(self, rollout_id: str, key: str, detail: Any) -> None:
        self._write("UPDATE steps SET detail = %s WHERE rollout_id = %s AND key = %s",
                    (self._clean(detail), rollout_id, key))

    def finish_step(self, rollout_id: str, key: str, ok: bool, at: float, detail: Any = None) -> None:
        self._write("UPDATE steps SET status = %s, finished_at = %s, detail = %s WHERE rollout_id = %s AND key = %s",
                    ("done" if ok else "failed", at, self._clean(detail), rollout_id, key))

    # -- measurements and baselines ------------------------------------------------------

    def add_ticks(self, rollout_id: str, ticks: list[tuple[str, str, int, float, list[list]]],
                  coverage: list[tuple] = ()) -> None:
        """As ``SQLiteStore.add_ticks``. A tick already stored gains only the evaluations
        (by region and check) it lacks, so a retried call adds nothing twice; the covered
        time is written in the same transaction."""
        redact_ticks(self.redactor, ticks)
        rows = [(rollout_id, phase, policy, tick, at, _json_text(evaluations))
                for phase, policy, tick, at, evaluations in ticks]
        covered = [(rollout_id, phase, region, policy, check, c, u, json.dumps(spans), int(applies))
                   for phase, region, policy, check, c, u, spans, applies in coverage]
        if rows or covered:
            self.db.run(lambda conn: self._insert_ticks(conn, rows, ticks, covered))

    def coverage(self, rollout_id: str, phase: str | None = None) -> list[dict[str, Any]]:
        """Covered time per phase, region, policy and check (``judging.coverage``)."""
        sql, args = "SELECT * FROM coverage WHERE rollout_id = %s", [rollout_id]
        if phase is not None:
            sql, args = sql + " AND phase = %s", args + [phase]
        return [dict(r) | {"check": r["check_name"], "spans": json.loads(r["spans"]), "applies": bool(r["applies"])}
                for r in self._read(sql + " ORDER BY phase, region, policy, check_name", args)]

    @staticmethod
    def _insert_ticks(conn: psycopg.Connection, rows: list[tuple], ticks: list[tuple], covered: list[tuple]) -> None:
        if covered:
            conn.cursor().executemany(
                "INSERT INTO coverage VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s) ON CONFLICT (rollout_id, phase, region,"
                " policy, check_name) DO UPDATE SET covered = excluded.covered, uncovered = excluded.uncovered,"
                " spans = excluded.spans, applies = excluded.applies", covered)
        if not rows:
            return
        cur = conn.cursor()
        cur.executemany("INSERT INTO ticks (rollout_id, phase, policy, tick, at, evaluations)"
                        " VALUES (%s,%s,%s,%s,%s,%s) ON CONFLICT DO NOTHING RETURNING id", rows, returning=True)
        stored = []
        for i in range(len(rows)):
            if cur.fetchone() is None:
                stored.append(i)
            cur.nextset()
        for i in stored:  # the tick exists: append what it lacks
            rollout_id, phase, policy, tick = rows[i][:4]
            tick_id, text = conn.execute("SELECT id, evaluations FROM ticks WHERE rollout_id = %s AND phase = %s"
                                         " AND policy = %s AND tick = %s FOR UPDATE",
                                         (rollout_id, phase, policy, tick)).fetchone()
            have = json.loads(text)
            seen = {(e[_REGION], e[_CHECK]) for e in have}
            new = [e for e in ticks[i][4] if (e[_REGION], e[_CHECK]) not in seen]
            if new:
                conn.execute("UPDATE ticks SET evaluations = %s WHERE id = %s", (_json_text(have + new), tick_id))

    def measurements(self, rollout_id: str, phase: str | None = None, *, region: str | None = None,
                     check: str | None = None) -> list[dict[str, Any]]:
        return unpack_ticks(self._read("SELECT * FROM ticks WHERE rollout_id = %s AND (%s::text IS NULL OR phase = %s)"
                                       " ORDER BY id", (rollout_id, phase, phase)), region=region, check=check)

    def measurements_by_id(self, ids: Iterable[int]) -> dict[int, dict[str, Any]]:
        wanted = ticks_of(ids)
        out: dict[int, dict[str, Any]] = {}
        if wanted:
            for tick in self._read("SELECT * FROM ticks WHERE id = ANY(%s)", (sorted(wanted),)):
                out.update((row["id"], row) for row in unpack_tick(tick) if row["id"] in wanted[tick["id"]])
        return out

    def measurement_count(self, rollout_id: str) -> int:
        rows = self.db.tuples("SELECT SUM(jsonb_array_length(evaluations::jsonb)) FROM ticks WHERE rollout_id = %s",
                              (rollout_id,))
        return int(rows[0][0] or 0)

    def verdict_groups(self, rollout_id: str) -> list[tuple]:
        return self.db.tuples(_GROUPS, (rollout_id,))

    def measurement_buckets(self, rollout_id: str, start: float, width: float, count: int) -> list[tuple]:
        return self.db.tuples(_BUCKETS, (start, width, count - 1, rollout_id))

    def set_baseline(self, rollout_id: str, region: str, policy: str, check: str, value: float | None,
                     window: tuple[float, float], evidence: dict[str, Any]) -> None:
        self._write("INSERT INTO baselines VALUES (%s,%s,%s,%s,%s,%s,%s,%s)"
                    " ON CONFLICT (rollout_id, region, policy, check_name) DO UPDATE SET value = excluded.value,"
                    " window_start = excluded.window_start, window_end = excluded.window_end,"
                    " evidence = excluded.evidence",
                    (rollout_id, region, policy, check, value, window[0], window[1], self._clean(evidence)))

    def baselines(self, rollout_id: str) -> dict[tuple[str, str, str], dict[str, Any]]:
        rows = self._read("SELECT * FROM baselines WHERE rollout_id = %s", (rollout_id,))
        return {(r["region"], r["policy"], r["check_name"]): r | {"evidence": json.loads(r["evidence"] or "{}")}
                for r in rows}

    # -- locks: a row per service, taken under its row lock ----------------------------------

    @staticmethod
    def _local(row: dict[str, Any], db_now: float) -> dict[str, Any]:
        """A lock row with its times moved from the database's clock to this machine's."""
        shift = time.time() - db_now
        return row | {"acquired_at": row["acquired_at"] + shift, "expires_at": row["expires_at"] + shift}

    def try_lock(self, service: str, rollout_id: str, holder: str, host: str, pid: int, lease: float,
                 stale: Callable[[dict[str, Any]], bool]) -> dict[str, Any] | None:
        def fn(conn: psycopg.Connection) -> dict[str, Any] | None:
            cur = conn.cursor(row_factory=dict_row)
            taken = cur.execute(f"INSERT INTO locks SELECT %s, %s, %s, %s, %s, {_NOW}, {_NOW} + %s"
                                " ON CONFLICT (service) DO NOTHING RETURNING service",
                                (service, rollout_id, holder, host, pid, lease)).fetchone()
            if taken is not None:
                return None
            row = cur.execute(f"SELECT *, {_NOW} AS db_now FROM locks WHERE service = %s FOR UPDATE",
                              (service,)).fetchone()
            db_now = row.pop("db_now")
            if row["rollout_id"] != rollout_id and not stale(self._local(row, db_now)):
                return self._local(row, db_now)
            cur.execute("UPDATE locks SET rollout_id = %s, holder = %s, host = %s, pid = %s, acquired_at = %s,"
                        " expires_at = %s WHERE service = %s",
                        (rollout_id, holder, host, pid, db_now, db_now + lease, service))
            return None

        return self.db.run(fn)

    def renew_lock(self, service: str, rollout_id: str, holder: str, lease: float) -> bool:
        return self._write(f"UPDATE locks SET expires_at = {_NOW} + %s WHERE service = %s AND rollout_id = %s"
                           " AND holder = %s", (lease, service, rollout_id, holder)) > 0

    def lock(self, service: str) -> dict[str, Any] | None:
        rows = self._read(f"SELECT *, {_NOW} AS db_now FROM locks WHERE service = %s", (service,))
        if not rows:
            return None
        row = rows[0]
        return self._local(row, row.pop("db_now"))

    def release_lock(self, service: str, rollout_id: str | None = None, holder: str | None = None) -> bool:
        return self._write("DELETE FROM locks WHERE service = %s AND (%s::text IS NULL OR rollout_id = %s)"
                           " AND (%s::text IS NULL OR holder = %s)",
                           (service, rollout_id, rollout_id, holder, holder)) > 0


# The report's aggregates, as ``SQLiteStore`` computes them; sorted as SQLite sorts
# (byte order), whatever the database's collation.
_GROUPS = """
SELECT phase, region, policy, check_name, COUNT(*), MIN(at), MAX(at),
       SUM(CASE WHEN status = 'fail' THEN 1 ELSE 0 END), SUM(CASE WHEN status = 'inconclusive' THEN 1 ELSE 0 END),
       MIN(CASE WHEN status = 'fail' THEN id END), MAX(id),
       MIN(CASE WHEN pending = 1 OR status = 'fail' THEN at END)
FROM measurements WHERE rollout_id = %s
GROUP BY phase, region, policy, check_name
ORDER BY phase COLLATE "C", region COLLATE "C", policy COLLATE "C", check_name COLLATE "C"
"""

_BUCKETS = """
SELECT policy, check_name, region, LEAST(TRUNC((at - %s) / %s)::bigint, %s) AS b,
       MIN(at), MAX(at), MIN(value), MAX(value),
       MAX(CASE WHEN status = 'fail' THEN 3 WHEN status = 'inconclusive' THEN 2 WHEN pending = 1 THEN 1 ELSE 0 END),
       AVG(threshold), AVG(reference)
FROM measurements WHERE rollout_id = %s
GROUP BY policy, check_name, region, b
ORDER BY policy COLLATE "C", check_name COLLATE "C", region COLLATE "C", b
"""

"""The incident outbox on PostgreSQL: ``state.outbox`` for ``PostgresStore``.

Across machines, one delivery per update whichever runner flushes: a chain's claim is
its row in ``delivery_claims``, taken or renewed under ``SELECT ... FOR UPDATE`` and
compared with the database's clock; an update is queued once per (incident, sink,
revision) under a transaction-scoped advisory lock on that chain, so two runners
queuing the same revision at once queue it once.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any, Callable

import psycopg

from guardrail.errors import NotFound

if TYPE_CHECKING:
    from guardrail.secrets import Redactor
    from guardrail.state.pgconn import Database

_NOW = "extract(epoch from clock_timestamp())::float8"


class PostgresOutbox:
    """Incidents and their deliveries, for ``PostgresStore``."""

    redactor: Redactor
    db: Database
    location: str

    def _clean(self, value: Any) -> str:  # pragma: no cover - PostgresStore's
        raise NotImplementedError

    def save_incident(self, incident: dict[str, Any]) -> None:
        now = time.time()
        self.db.write(
            "INSERT INTO incidents (id, rollout_id, status, opened_at, updated_at, body) VALUES (%s,%s,%s,%s,%s,%s)"
            " ON CONFLICT (id) DO UPDATE SET status = excluded.status, updated_at = excluded.updated_at,"
            " body = excluded.body",
            (incident["id"], incident["rollout_id"], incident["status"], now, now, self._clean(incident)))

    def incident(self, incident_id: str) -> dict[str, Any]:
        rows = self.db.tuples("SELECT body FROM incidents WHERE id = %s OR rollout_id = %s", (incident_id, incident_id))
        if not rows:
            raise NotFound(f"no incident {incident_id!r} in {self.location}")
        return json.loads(rows[0][0])

    def incidents(self, limit: int = 50) -> list[dict[str, Any]]:
        rows = self.db.tuples("SELECT body FROM incidents ORDER BY opened_at DESC LIMIT %s", (limit,))
        return [json.loads(r[0]) for r in rows]

    def sink_ref(self, incident_id: str, sink: str) -> dict[str, Any] | None:
        rows = self.db.tuples("SELECT ref FROM sink_refs WHERE incident_id = %s AND sink = %s", (incident_id, sink))
        return json.loads(rows[0][0]) if rows else None

    def set_sink_ref(self, incident_id: str, sink: str, ref: dict[str, Any] | None) -> None:
        self.db.write("INSERT INTO sink_refs VALUES (%s,%s,%s) ON CONFLICT (incident_id, sink)"
                      " DO UPDATE SET ref = excluded.ref", (incident_id, sink, self._clean(ref)))

    def enqueue_delivery(self, incident: dict[str, Any], sink: str) -> bool:
        def fn(conn: psycopg.Connection) -> bool:
            conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s || '/' || %s, 0))", (incident["id"], sink))
            return conn.execute(
                "INSERT INTO deliveries (incident_id, sink, status, incident_status, attempts, created_at, payload)"
                " SELECT %s, %s, 'pending', %s, 0, %s, %s WHERE NOT EXISTS (SELECT 1 FROM deliveries"
                " WHERE incident_id = %s AND sink = %s AND (payload::jsonb -> 'revision') = to_jsonb(%s::bigint))",
                (incident["id"], sink, incident["status"], time.time(), self._clean(incident), incident["id"], sink,
                 incident.get("revision", 0))).rowcount > 0

        return self.db.run(fn)

    def deliveries(self, status: str | None = None, *, incident_id: str | None = None,
                   sink: str | None = None) -> list[dict[str, Any]]:
        rows = self.db.read(
            "SELECT * FROM deliveries WHERE (%s::text IS NULL OR status = %s)"
            " AND (%s::text IS NULL OR incident_id = %s) AND (%s::text IS NULL OR sink = %s) ORDER BY id",
            (status, status, incident_id, incident_id, sink, sink))
        return [r | {"payload": json.loads(r["payload"])} for r in rows]

    def record_delivery(self, delivery_id: int, status: str, error: str | None = None) -> None:
        self.db.write(
            "UPDATE deliveries SET status = %s, attempts = attempts + 1, last_error = %s,"
            " delivered_at = CASE WHEN %s = 'delivered' THEN %s ELSE delivered_at END WHERE id = %s",
            (status, self.redactor.redact(error), status, time.time(), delivery_id))

    def requeue_rejected(self, incident_id: str | None = None) -> int:
        return self.db.write("UPDATE deliveries SET status = 'pending' WHERE status = 'rejected'"
                             " AND (%s::text IS NULL OR incident_id = %s)", (incident_id, incident_id))

    def claim_chain(self, incident_id: str, sink: str, holder: str, lease: float,
                    gone: Callable[[str], bool] | None = None) -> dict[str, Any] | None:
        """As ``OutboxStore.claim_chain``: a claim whose holder ``gone(holder)`` says is gone
        (a process of this host that no longer runs) is taken at once."""
        def fn(conn: psycopg.Connection) -> dict[str, Any] | None:
            taken = conn.execute(f"INSERT INTO delivery_claims SELECT %s, %s, %s, {_NOW} + %s"
                                 " ON CONFLICT (incident_id, sink) DO NOTHING RETURNING holder",
                                 (incident_id, sink, holder, lease)).fetchone()
            if taken is not None:
                return None
            row_holder, expires_at, db_now = conn.execute(
                f"SELECT holder, expires_at, {_NOW} FROM delivery_claims WHERE incident_id = %s AND sink = %s"
                " FOR UPDATE", (incident_id, sink)).fetchone()
            if row_holder != holder and expires_at > db_now and not (gone is not None and gone(row_holder)):
                return {"holder": row_holder, "expires_at": expires_at - db_now + time.time()}
            conn.execute("UPDATE delivery_claims SET holder = %s, expires_at = %s WHERE incident_id = %s AND sink = %s",
                         (holder, db_now + lease, incident_id, sink))
            return None

        return self.db.run(fn)

    def release_chain(self, incident_id: str, sink: str, holder: str) -> None:
        self.db.write("DELETE FROM delivery_claims WHERE incident_id = %s AND sink = %s AND holder = %s",
                      (incident_id, sink, holder))

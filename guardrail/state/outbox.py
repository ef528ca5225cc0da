"""The store's incident outbox: incidents, what each sink returned (its ``ref``), the
deliveries still to make, and which process is delivering a sink's chain now.

A part of ``SQLiteStore`` (its plumbing, ``_write``, ``_read``, ``_clean`` and
``_transaction``, lives there); see ``guardrail.incidents.delivery`` for how the outbox drains.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any, Callable

from guardrail.errors import NotFound

if TYPE_CHECKING:
    from guardrail.secrets import Redactor


class OutboxStore:
    """Incidents and their deliveries, for ``SQLiteStore``."""

    redactor: Redactor

    def save_incident(self, incident: dict[str, Any]) -> None:
        now = time.time()
        self._write(
            "INSERT INTO incidents (id, rollout_id, status, opened_at, updated_at, body) VALUES (?,?,?,?,?,?)"
            " ON CONFLICT (id) DO UPDATE SET status = excluded.status, updated_at = excluded.updated_at,"
            " body = excluded.body",
            (incident["id"], incident["rollout_id"], incident["status"], now, now, self._clean(incident)),
        )

    def incident(self, incident_id: str) -> dict[str, Any]:
        rows = self._read("SELECT body FROM incidents WHERE id = ? OR rollout_id = ?", (incident_id, incident_id))
        if not rows:
            raise NotFound(f"no incident {incident_id!r} in {self.path}")
        return json.loads(rows[0][0])

    def incidents(self, limit: int = 50) -> list[dict[str, Any]]:
        rows = self._read("SELECT body FROM incidents ORDER BY opened_at DESC LIMIT ?", (limit,))
        return [json.loads(r[0]) for r in rows]

    def sink_ref(self, incident_id: str, sink: str) -> dict[str, Any] | None:
        rows = self._read("SELECT ref FROM sink_refs WHERE incident_id = ? AND sink = ?", (incident_id, sink))
        return json.loads(rows[0][0]) if rows else None

    def set_sink_ref(self, incident_id: str, sink: str, ref: dict[str, Any] | None) -> None:
        self._write("INSERT OR REPLACE INTO sink_refs VALUES (?,?,?)", (incident_id, sink, self._clean(ref)))

    def enqueue_delivery(self, incident: dict[str, Any], sink: str) -> bool:
        """Queue one revision of an incident for a sink (``pending``). Idempotent per
        (incident, sink, revision), so a publish repeated after a crash queues nothing new."""
        return self._write(
            "INSERT INTO deliveries (incident_id, sink, status, incident_status, attempts, created_at, payload)"
            " SELECT ?, ?, 'pending', ?, 0, ?, ? WHERE NOT EXISTS (SELECT 1 FROM deliveries WHERE incident_id = ?"
            " AND sink = ? AND json_extract(payload, '$.revision') = ?)",
            (incident["id"], sink, incident["status"], time.time(), self._clean(incident), incident["id"], sink,
             incident.get("revision", 0))).rowcount > 0

    def deliveries(self, status: str | None = None, *, incident_id: str | None = None,
                   sink: str | None = None) -> list[dict[str, Any]]:
        """Outbox rows in the order they were queued (the order a sink must see them)."""
        sql, args = "SELECT * FROM deliveries WHERE 1 = 1", []
        for column, value in (("status", status), ("incident_id", incident_id), ("sink", sink)):
            if value is not None:
                sql, args = sql + f" AND {column} = ?", args + [value]
        return [dict(r) | {"payload": json.loads(r["payload"])} for r in self._read(sql + " ORDER BY id", args)]

    def record_delivery(self, delivery_id: int, status: str, error: str | None = None) -> None:
        """One attempt's result: ``delivered``, ``pending`` (retry later) or ``rejected``
        (the service refused it; retried only on request)."""
        self._write(
            "UPDATE deliveries SET status = ?, attempts = attempts + 1, last_error = ?,"
            " delivered_at = CASE WHEN ? = 'delivered' THEN ? ELSE delivered_at END WHERE id = ?",
            (status, self.redactor.redact(error), status, time.time(), delivery_id))

    def requeue_rejected(self, incident_id: str | None = None) -> int:
        """Make rejected deliveries pending again (after the configuration was fixed)."""
        return self._write("UPDATE deliveries SET status = 'pending' WHERE status = 'rejected'"
                           " AND (? IS NULL OR incident_id = ?)", (incident_id, incident_id)).rowcount

    def claim_chain(self, incident_id: str, sink: str, holder: str, lease: float,
                    gone: Callable[[str], bool] | None = None) -> dict[str, Any] | None:
        """Claim (or renew) the delivery of one (incident, sink) chain for ``lease`` seconds.
        Returns None when ``holder`` has it, else the live claim of whoever does. A claim
        whose holder ``gone(holder)`` says is gone is taken at once, not when it lapses."""
        now = time.time()
        with self._transaction() as db:
            row = db.execute("SELECT holder, expires_at FROM delivery_claims WHERE incident_id = ? AND sink = ?",
                             (incident_id, sink)).fetchone()
            if (row is not None and row["holder"] != holder and row["expires_at"] > now
                    and not (gone is not None and gone(row["holder"]))):
                return dict(row)
            db.execute("INSERT OR REPLACE INTO delivery_claims VALUES (?,?,?,?)",
                       (incident_id, sink, holder, now + lease))
            return None

    def release_chain(self, incident_id: str, sink: str, holder: str) -> None:
        self._write("DELETE FROM delivery_claims WHERE incident_id = ? AND sink = ? AND holder = ?",
                    (incident_id, sink, holder))

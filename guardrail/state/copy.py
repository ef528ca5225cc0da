"""Move history between stores: ``guardrail state copy SRC DST`` (a team's SQLite file
into the PostgreSQL its runners now share, or back).

Rollout by rollout, each in one transaction on the destination: its row, events,
steps, ticks, baselines, incident with its outbox (deliveries and sink refs), then the
locks and delivery claims of services the destination has none for. Rows are copied
as stored (already redacted; JSON text byte for byte); numbered rows (events, ticks,
deliveries) take the destination's next numbers, in their order, so a database that
already holds other runners' history keeps it. A rollout the destination already
holds is skipped: copying twice copies nothing twice.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from guardrail.state.protocol import Store

_NUMBERED = {"events": "seq", "ticks": "id", "deliveries": "id"}
_BY_ROLLOUT = ("events", "steps", "ticks", "coverage", "baselines")


@dataclass
class Copied:
    rollouts: int = 0
    skipped: list[str] = field(default_factory=list)
    rows: dict[str, int] = field(default_factory=dict)

    def add(self, table: str, count: int) -> None:
        self.rows[table] = self.rows.get(table, 0) + count


def _postgres(store: Store) -> bool:
    return hasattr(store, "db")


def _select(store: Store, sql: str, args: tuple = ()) -> list[dict[str, Any]]:
    if _postgres(store):
        return store.db.read(sql.replace("?", "%s"), args)
    return [dict(r) for r in store._read(sql, args)]  # noqa: SLF001 - the copy reads tables whole


def _insert(store: Store, batches: list[tuple[str, list[dict[str, Any]]]]) -> None:
    """Insert rows into tables, all in one transaction."""
    statements = []
    for table, rows in batches:
        if not rows:
            continue
        columns = [c for c in rows[0] if c != _NUMBERED.get(table)]
        sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
        statements.append((sql, [tuple(r[c] for c in columns) for r in rows]))
    if _postgres(store):
        def fn(conn):
            for sql, values in statements:
                conn.cursor().executemany(sql.replace("?", "%s"), values)

        store.db.run(fn)
    else:
        with store._transaction() as db:  # noqa: SLF001
            for sql, values in statements:
                db.executemany(sql, values)


def copy_state(src: Store, dst: Store) -> Copied:
    """Copy every rollout ``dst`` lacks, oldest first, then locks and claims it lacks."""
    out = Copied()
    have = {r["id"] for r in _select(dst, "SELECT id FROM rollouts")}
    for rollout in _select(src, "SELECT * FROM rollouts ORDER BY created_at"):
        rid = rollout["id"]
        if rid in have:
            out.skipped.append(rid)
            continue
        batches = [("rollouts", [rollout])]
        for table in _BY_ROLLOUT:
            order = _NUMBERED.get(table, "rowid" if not _postgres(src) else "1")
            batches.append((table, _select(src, f"SELECT * FROM {table} WHERE rollout_id = ? ORDER BY {order}",
                                           (rid,))))
        incidents = _select(src, "SELECT * FROM incidents WHERE rollout_id = ?", (rid,))
        batches.append(("incidents", incidents))
        for incident in incidents:
            batches.append(("deliveries", _select(src, "SELECT * FROM deliveries WHERE incident_id = ? ORDER BY id",
                                                  (incident["id"],))))
            batches.append(("sink_refs", _select(src, "SELECT * FROM sink_refs WHERE incident_id = ?",
                                                 (incident["id"],))))
        _insert(dst, batches)
        out.rollouts += 1
        for table, rows in batches:
            out.add(table, len(rows))
    locked = {r["service"] for r in _select(dst, "SELECT service FROM locks")}
    locks = [r for r in _select(src, "SELECT * FROM locks") if r["service"] not in locked]
    claimed = {(r["incident_id"], r["sink"]) for r in _select(dst, "SELECT incident_id, sink FROM delivery_claims")}
    claims = [r for r in _select(src, "SELECT * FROM delivery_claims") if (r["incident_id"], r["sink"]) not in claimed]
    _insert(dst, [("locks", locks), ("delivery_claims", claims)])
    out.add("locks", len(locks))
    out.add("delivery_claims", len(claims))
    return out

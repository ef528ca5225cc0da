"""The store backends the conformance suite runs on (``backend`` in tests/conftest.py).

A backend gives a test what it needs beyond the ``Store`` protocol: ``spec`` (what
``--state`` / ``GUARDRAIL_STATE`` would say), ``open()`` a store on it, ``rows(sql)``
on a separate raw connection (to see what another process would see, through the
``measurements`` view both backends have), and ``written()``: every byte the backend
stored, to grep for secrets. A new backend is one more class here and one more
parameter of the fixture.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

from guardrail.secrets import Redactor
from guardrail.state.open import open_store


class SQLiteBackend:
    name = "sqlite"

    def __init__(self, folder: Path):
        self.path = folder / "state" / "state.db"
        self.spec = str(self.path)

    def open(self, redactor: Redactor | None = None):
        return open_store(self.path, redactor)

    def rows(self, sql: str, args: tuple = ()) -> list[tuple]:
        with closing(sqlite3.connect(self.path)) as db:
            return [tuple(r) for r in db.execute(sql.replace("%s", "?"), args).fetchall()]

    def written(self) -> bytes:
        """The file and its WAL, as bytes on disk."""
        return b"".join(p.read_bytes() for p in sorted(self.path.parent.iterdir()) if p.is_file())


class PostgresBackend:
    name = "postgres"

    def __init__(self, url: str):
        self.spec = url

    def open(self, redactor: Redactor | None = None):
        return open_store(self.spec, redactor)

    def rows(self, sql: str, args: tuple = ()) -> list[tuple]:
        import psycopg

        with psycopg.connect(self.spec, autocommit=True) as conn:
            return [tuple(r) for r in conn.execute(sql, args).fetchall()]

    def written(self) -> bytes:
        """Every row of every table in the database, as text."""
        tables = [r[0] for r in self.rows("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]
        assert tables, "no tables: nothing to grep"
        out = []
        for table in tables:
            out += [r[0] for r in self.rows(f'SELECT t::text FROM "{table}" t')]
        return "\n".join(out).encode()


def add_measurements(store, rollout_id: str, rows: list[tuple]) -> None:
    """Store measurement rows (in the order of ``MEASUREMENT_COLUMNS``) as the engine
    stores them: one tick per phase, policy and tick number, through ``add_ticks``."""
    from guardrail.state.schema import PACKED

    columns = store.MEASUREMENT_COLUMNS
    pack = [columns.index(name) for name in PACKED]
    ticks: dict[tuple, list[list]] = {}
    for row in rows:
        key = (row[columns.index("phase")], row[columns.index("policy")], row[columns.index("tick")],
               row[columns.index("at")])
        ticks.setdefault(key, []).append([row[i] for i in pack])
    store.add_ticks(rollout_id, [(*key, evaluations) for key, evaluations in ticks.items()])

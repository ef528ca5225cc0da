"""The state file's tables (SQLite). The schema is the audit trail: see ``store``."""

import json
import sqlite3

SCHEMA_VERSION = 3
"""1: a row per evaluation in ``measurements``; 2: packed in ``ticks``; 3: ``coverage``
(see ``migrate``)."""

PACKED = ("region", "check_name", "status", "value", "threshold", "reference", "comparison", "pending", "reason",
          "query", "evidence", "breach_since", "first_breach_at", "streak", "evaluations", "failures",
          "inconclusives")
"""The fields of one evaluation inside ``ticks.evaluations``, in order."""

ROW_SPAN = 1_000_000
"""A measurement's id is its tick row's id times this, plus its index in the tick."""

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS rollouts (
    id TEXT PRIMARY KEY, service TEXT NOT NULL, version TEXT NOT NULL, previous TEXT NOT NULL,
    plan_path TEXT NOT NULL, plan_digest TEXT NOT NULL, clock TEXT NOT NULL, clock_start REAL NOT NULL,
    state TEXT NOT NULL, outcome TEXT, reason TEXT,
    created_at REAL NOT NULL, updated_at REAL NOT NULL, finished_at REAL,
    requests TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS rollouts_service ON rollouts (service, created_at);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, rollout_id TEXT NOT NULL, at REAL NOT NULL,
    kind TEXT NOT NULL, data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_rollout ON events (rollout_id, seq);
CREATE TABLE IF NOT EXISTS steps (
    rollout_id TEXT NOT NULL, key TEXT NOT NULL, status TEXT NOT NULL,
    started_at REAL NOT NULL, finished_at REAL, attempts INTEGER NOT NULL DEFAULT 1, detail TEXT,
    PRIMARY KEY (rollout_id, key)
);
-- One row per evaluation tick of one policy in one phase: its evaluations packed as a
-- JSON array of arrays in the order of PACKED (below). A row per evaluation cost more
-- than the sim source's own work; the ``measurements`` view unpacks them for SQL.
CREATE TABLE IF NOT EXISTS ticks (
    id INTEGER PRIMARY KEY, rollout_id TEXT NOT NULL, phase TEXT NOT NULL, policy TEXT NOT NULL,
    tick INTEGER NOT NULL, at REAL NOT NULL, evaluations TEXT NOT NULL,
    UNIQUE (rollout_id, phase, policy, tick)
);
-- Covered bake time per phase, check and region (guardrail.judging.coverage), written
-- with each tick: seconds covered by clean passes on fresh data, seconds evaluated
-- without such evidence, and the latest spans of those ([[from, to], ...]).
CREATE TABLE IF NOT EXISTS coverage (
    rollout_id TEXT NOT NULL, phase TEXT NOT NULL, region TEXT NOT NULL, policy TEXT NOT NULL,
    check_name TEXT NOT NULL, covered REAL NOT NULL, uncovered REAL NOT NULL, spans TEXT NOT NULL,
    applies INTEGER NOT NULL DEFAULT 1,
    PRIMARY KEY (rollout_id, phase, region, policy, check_name)
);
CREATE TABLE IF NOT EXISTS baselines (
    rollout_id TEXT NOT NULL, region TEXT NOT NULL, policy TEXT NOT NULL, check_name TEXT NOT NULL,
    value REAL, window_start REAL NOT NULL, window_end REAL NOT NULL, evidence TEXT,
    PRIMARY KEY (rollout_id, region, policy, check_name)
);
CREATE TABLE IF NOT EXISTS incidents (
    id TEXT PRIMARY KEY, rollout_id TEXT NOT NULL UNIQUE, status TEXT NOT NULL,
    opened_at REAL NOT NULL, updated_at REAL NOT NULL, body TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS deliveries (
    id INTEGER PRIMARY KEY AUTOINCREMENT, incident_id TEXT NOT NULL, sink TEXT NOT NULL,
    status TEXT NOT NULL, incident_status TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL, delivered_at REAL, last_error TEXT, payload TEXT NOT NULL
);
-- Who is delivering an (incident, sink) chain now: one process at a time, so two
-- flushes (or a flush and a running rollout) never send one update twice.
CREATE TABLE IF NOT EXISTS delivery_claims (
    incident_id TEXT NOT NULL, sink TEXT NOT NULL, holder TEXT NOT NULL, expires_at REAL NOT NULL,
    PRIMARY KEY (incident_id, sink)
);
CREATE TABLE IF NOT EXISTS sink_refs (
    incident_id TEXT NOT NULL, sink TEXT NOT NULL, ref TEXT NOT NULL, PRIMARY KEY (incident_id, sink)
);
CREATE TABLE IF NOT EXISTS locks (
    service TEXT PRIMARY KEY, rollout_id TEXT NOT NULL, holder TEXT NOT NULL, host TEXT NOT NULL,
    pid INTEGER NOT NULL, acquired_at REAL NOT NULL, expires_at REAL NOT NULL
);
"""

SCHEMA_COVERAGE = SCHEMA[SCHEMA.index("CREATE TABLE IF NOT EXISTS coverage"):SCHEMA.index("CREATE TABLE IF NOT EXISTS baselines")]

_FIELDS = ",\n       ".join(f"json_extract(e.value, '$[{i}]') AS {name}" for i, name in enumerate(PACKED))
VIEW = f"""
CREATE VIEW IF NOT EXISTS measurements AS
SELECT t.id * {ROW_SPAN} + e.key AS id, t.rollout_id, t.phase, t.tick, t.at, t.policy,
       {_FIELDS}
FROM ticks t, json_each(t.evaluations) e
"""
"""Every evaluation as a row, for SQL readers (the report's aggregates, a person with ``sqlite3``)."""


def migrate(db: sqlite3.Connection, found: int) -> None:
    """Bring a state file written with schema ``found`` to ``SCHEMA_VERSION``, in one transaction."""
    db.execute("BEGIN IMMEDIATE")
    try:
        if found < 2 and _is_table(db, "measurements"):
            _pack_measurements(db)
        db.execute(VIEW)
        if found < 3:
            _count_coverage(db)
        db.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise


def _is_table(db: sqlite3.Connection, name: str) -> bool:
    return db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)).fetchone() is not None


def _pack_measurements(db: sqlite3.Connection) -> None:
    """Schema 1 to 2: a row per evaluation becomes a row per tick, order kept."""
    ticks: dict[tuple, list] = {}
    cursor = db.execute("SELECT * FROM measurements ORDER BY id")
    names = [d[0] for d in cursor.description]
    for values in cursor:
        row = dict(zip(names, values))
        row["evidence"] = json.loads(row["evidence"]) if row["evidence"] else None
        key = (row["rollout_id"], row["phase"], row["policy"], row["tick"], row["at"])
        ticks.setdefault(key, []).append([row[f] for f in PACKED])
    db.executemany("INSERT INTO ticks (rollout_id, phase, policy, tick, at, evaluations) VALUES (?,?,?,?,?,?)",
                   [(*key, json.dumps(evaluations)) for key, evaluations in ticks.items()])
    db.execute("DROP TABLE measurements")


# -- PostgreSQL ---------------------------------------------------------------------------
#
# The same tables, from the same definition: ``SCHEMA`` above, with SQLite's types
# spelled as PostgreSQL spells them. JSON stays TEXT (written by the same ``json.dumps``),
# so a row copied between backends is byte for byte the row it was.

_POSTGRES_TYPES = (
    ("INTEGER PRIMARY KEY AUTOINCREMENT", "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY"),
    ("id INTEGER PRIMARY KEY,", "id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,"),
    (" REAL", " DOUBLE PRECISION"),
    (" INTEGER", " BIGINT"),
)


def _for_postgres(ddl: str) -> str:
    for sqlite, postgres in _POSTGRES_TYPES:
        ddl = ddl.replace(sqlite, postgres)
    return ddl


POSTGRES_SCHEMA = _for_postgres(SCHEMA) + """
-- Writes that append (an event, a step's attempt, a spooled notification) carry a token,
-- committed in the same transaction: a write retried after its connection died during
-- COMMIT finds its token and is not applied twice.
CREATE TABLE IF NOT EXISTS write_tokens (token TEXT PRIMARY KEY, at DOUBLE PRECISION NOT NULL, result TEXT);
"""
"""The PostgreSQL tables: ``SCHEMA``'s, plus ``write_tokens``."""

# Numbers in ``ticks.evaluations`` are JSON; infinities are written as 1e999 (see
# ``sqlite._json_text``), which float8 cannot hold: these read them back as infinities.
_POSTGRES_FUNCTIONS = """
CREATE OR REPLACE FUNCTION guardrail_float(v jsonb) RETURNS double precision LANGUAGE sql IMMUTABLE AS $$
  SELECT CASE WHEN v IS NULL OR jsonb_typeof(v) <> 'number' THEN NULL
              WHEN v::text::numeric > 1e308 THEN 'Infinity'::float8
              WHEN v::text::numeric < -1e308 THEN '-Infinity'::float8
              ELSE v::text::float8 END $$;
CREATE OR REPLACE FUNCTION guardrail_int(v jsonb) RETURNS bigint LANGUAGE sql IMMUTABLE AS $$
  SELECT CASE jsonb_typeof(v) WHEN 'boolean' THEN CASE WHEN v::text = 'true' THEN 1 ELSE 0 END
              WHEN 'number' THEN v::text::numeric::bigint END $$;
"""

_POSTGRES_KINDS = {"value": "float", "threshold": "float", "reference": "float", "breach_since": "float",
                   "first_breach_at": "float", "pending": "int", "streak": "int", "evaluations": "int",
                   "failures": "int", "inconclusives": "int", "evidence": "json"}


def _pg_field(i: int, name: str) -> str:
    kind = _POSTGRES_KINDS.get(name, "text")
    if kind == "text":
        return f"e.v->>{i} AS {name}"
    if kind == "json":
        return f"e.v->{i} AS {name}"
    return f"guardrail_{kind}(e.v->{i}) AS {name}"


_PG_FIELDS = ",\n       ".join(_pg_field(i, name) for i, name in enumerate(PACKED))
POSTGRES_VIEW = _POSTGRES_FUNCTIONS + f"""
CREATE OR REPLACE VIEW measurements AS
SELECT t.id * {ROW_SPAN} + e.k - 1 AS id, t.rollout_id, t.phase, t.tick, t.at, t.policy,
       {_PG_FIELDS}
FROM ticks t, jsonb_array_elements(t.evaluations::jsonb) WITH ORDINALITY AS e(v, k);
"""
"""``VIEW`` for PostgreSQL: every evaluation as a row."""

POSTGRES_MIGRATIONS: dict[int, str] = {
    2: POSTGRES_SCHEMA + POSTGRES_VIEW,
    3: _for_postgres(SCHEMA_COVERAGE),  # covered bake time (a database created at 2 gains the table)
}
"""DDL that brings a PostgreSQL database from the version before to this version, in
order. A database starts at version 2 (the first PostgreSQL schema has SQLite's packed
ticks). Each runs in one transaction with the version it writes."""


def _count_coverage(db: sqlite3.Connection) -> None:
    """Schema 2 to 3: the covered time of the ticks already stored, by the rule of
    ``guardrail.judging.coverage`` (a tick after the first covers its interval when it
    is a pass on a measured value); the interval is the ticks' spacing."""
    db.execute(SCHEMA_COVERAGE)
    rows = db.execute("SELECT rollout_id, phase, policy, tick, at, evaluations FROM ticks ORDER BY id").fetchall()
    first: dict[tuple, float] = {}
    counts: dict[tuple, list] = {}
    at_of = {n: i for i, n in enumerate(PACKED)}
    for rollout_id, phase, policy, tick, at, evaluations in rows:
        key = (rollout_id, phase, policy)
        if tick == 0:
            first[key] = at
        if tick <= 0 or key not in first:
            continue
        interval = (at - first[key]) / tick
        for ev in json.loads(evaluations):
            entry = counts.setdefault(key + (ev[at_of["region"]], ev[at_of["check_name"]]), [0.0, 0.0, []])
            if ev[at_of["status"]] == "pass" and ev[at_of["value"]] is not None:
                entry[0] += interval
            else:
                entry[1] += interval
                if entry[2] and abs(entry[2][-1][1] - (at - interval)) < 1e-6:
                    entry[2][-1][1] = at
                else:
                    entry[2].append([at - interval, at])
    db.executemany("INSERT OR REPLACE INTO coverage VALUES (?,?,?,?,?,?,?,?,1)",
                   [(r, ph, region, policy, check, c, u, json.dumps(spans[-20:]))
                    for (r, ph, policy, region, check), (c, u, spans) in counts.items()])

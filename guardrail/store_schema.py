"""The state file's tables (SQLite). The schema is the audit trail: see ``store``."""

SCHEMA_VERSION = 1
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
CREATE TABLE IF NOT EXISTS measurements (
    id INTEGER PRIMARY KEY AUTOINCREMENT, rollout_id TEXT NOT NULL, phase TEXT NOT NULL,
    tick INTEGER NOT NULL, at REAL NOT NULL, region TEXT NOT NULL, policy TEXT NOT NULL,
    check_name TEXT NOT NULL, status TEXT NOT NULL, value REAL, threshold REAL, reference REAL,
    comparison TEXT, pending INTEGER NOT NULL DEFAULT 0, reason TEXT, query TEXT, evidence TEXT,
    -- the judge's memory after this evaluation, so a resumed phase continues exactly
    breach_since REAL, first_breach_at REAL, streak INTEGER NOT NULL DEFAULT 0,
    evaluations INTEGER NOT NULL DEFAULT 0, failures INTEGER NOT NULL DEFAULT 0,
    inconclusives INTEGER NOT NULL DEFAULT 0
);
-- No unique index: a resumed phase never writes a row it already has (ticks.Phase),
-- and maintaining one costs more than the rest of an insert.
CREATE INDEX IF NOT EXISTS measurements_phase ON measurements (rollout_id, phase);
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
CREATE TABLE IF NOT EXISTS sink_refs (
    incident_id TEXT NOT NULL, sink TEXT NOT NULL, ref TEXT NOT NULL, PRIMARY KEY (incident_id, sink)
);
CREATE TABLE IF NOT EXISTS locks (
    service TEXT PRIMARY KEY, rollout_id TEXT NOT NULL, holder TEXT NOT NULL, host TEXT NOT NULL,
    pid INTEGER NOT NULL, acquired_at REAL NOT NULL, expires_at REAL NOT NULL
);
"""

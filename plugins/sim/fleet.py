"""The simulated fleet's timeline: which version runs in which region since when.

It lives in an append-only JSON-lines file, one line per completed action::

    {"at": 1672938000.0, "action": "start"}
    {"at": 1672938600.0, "region": "r3", "version": "2023.01.05", "action": "deploy", "key": "ro-1/r3/deploy"}

Why a file rather than memory: the deployer and the source are separate plugin
instances, possibly in separate processes (a resumed rollout, ``guardrail`` next to a
``/metrics`` server), and the log must survive a crash so a repeated deploy with the
same idempotency key is recognised. Appends happen under ``flock`` so parallel deploys
(threads or processes) neither interleave nor both pass the idempotency check.

The ``start`` line pins the scenario start when the scenario itself has none: every
reader then agrees on where history begins, and a resumed run sees the same data.

Each rollout has its own fleet inside the default file (in the state folder): the sim
plugins of a rollout open it with ``run`` = the rollout id, write it on every line and read only their own
lines. So any number of rollouts (of one service, of different scenarios, a replay
with the same ``--start-at``) share one state folder without reading each other's
history, and a resumed rollout finds its own. A log opened without ``run`` (a ``fleet:``
file the plan names, shared on purpose; tests; tools outside a rollout) reads every line.
Readers re-read the file only when its size, inode or mtime changed. A line that is not
valid JSON (a write cut short by a crash) is ignored.
"""

from __future__ import annotations

import fcntl
import json
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from collections.abc import Iterator


class FleetLog:
    """One fleet log file. Cheap to create; ``refresh`` reloads it only when it changed."""

    def __init__(self, path: str | Path, run: str | None = None):
        self.path = Path(path)
        self.run = run
        """Whose fleet this is (a rollout id): only its lines are read and written; None: all."""
        self.generation = 0
        """Bumped whenever the content changed, so caches know when to recompute."""
        self._stamp: tuple[int, int, int] | None = None
        self._records: list[dict[str, Any]] = []
        self.refresh()

    # --- reading -------------------------------------------------------------------

    def refresh(self) -> bool:
        """Reload if the file changed since the last look; True when it did."""
        try:
            st = os.stat(self.path)
            stamp = (st.st_ino, st.st_size, st.st_mtime_ns)
        except FileNotFoundError:
            stamp = None
        if stamp == self._stamp:
            return False
        try:
            text = self.path.read_text(encoding="utf-8") if stamp else ""
        except FileNotFoundError:
            text = ""
        self._stamp, self._records = stamp, self._mine(_parse(text))
        self.generation += 1
        return True

    @property
    def records(self) -> list[dict[str, Any]]:
        return list(self._records)

    def start(self) -> float | None:
        """The pinned scenario start (epoch seconds), if any reader pinned one."""
        return _start_of(self._records)

    def timeline(self, region: str) -> list[tuple[float, str]]:
        """``[(since, version), ...]`` for the deploys and rollbacks of ``region``, by time."""
        changes = [(float(r["at"]), str(r["version"])) for r in self._records
                   if r.get("action") in ("deploy", "rollback") and r.get("region") == region]
        return sorted(changes, key=lambda change: change[0])

    def version(self, region: str, baseline: str) -> str:
        """What ``region`` runs now (the last change), ``baseline`` before any."""
        changes = self.timeline(region)
        return changes[-1][1] if changes else baseline

    def _mine(self, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return records if self.run is None else [r for r in records if r.get("run") == self.run]

    def _stamped(self, record: dict[str, Any]) -> dict[str, Any]:
        return record if self.run is None else {**record, "run": self.run}

    def has_key(self, key: str) -> bool:
        self.refresh()
        return any(r.get("key") == key for r in self._records)

    # --- writing -------------------------------------------------------------------

    def ensure_start(self, now: float) -> float:
        """The pinned start; pin ``now`` if there is none yet (first writer wins)."""
        with self._locked() as (fh, records):
            start = _start_of(records)
            if start is None:
                start = float(now)
                _append(fh, self._stamped({"at": start, "action": "start"}))
        self.refresh()
        return start

    def record(self, region: str, version: str, action: str, key: str, at: float) -> bool:
        """Append one completed action; False (and nothing written) when ``key`` is
        already in the log: the action was done before and must not be repeated."""
        with self._locked() as (fh, records):
            if any(r.get("key") == key for r in records):
                return False
            _append(fh, self._stamped({"at": float(at), "region": region, "version": version, "action": action,
                                       "key": key}))
        self.refresh()
        return True

    @contextmanager
    def _locked(self) -> Iterator[tuple[Any, list[dict[str, Any]]]]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a+", encoding="utf-8") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                fh.seek(0)
                yield fh, self._mine(_parse(fh.read()))
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)


def _append(fh: Any, record: dict[str, Any]) -> None:
    fh.write(json.dumps(record, sort_keys=True) + "\n")
    fh.flush()


def _start_of(records: list[dict[str, Any]]) -> float | None:
    return next((float(r["at"]) for r in records if r.get("action") == "start"), None)


def _parse(text: str) -> list[dict[str, Any]]:
    out = []
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and isinstance(record.get("at"), (int, float)):
            out.append(record)
    return out


def default_fleet_path(state_dir: Path, service: str) -> Path:
    """Where the sim deployer and source meet when the plan names no fleet log."""
    return Path(state_dir) / f"sim-fleet-{service or 'default'}.jsonl"

"""The store protocol: what the engine, the incident lifecycle, locks, reports and the
command line ask of durable state. ``SQLiteStore`` (one file) and ``PostgresStore``
(a database many runners share) implement it; ``open_store`` picks one from a path or
a URL. A new backend implements this class and passes ``tests/test_store.py`` (add one
fixture there).

Promises every implementation keeps:

- **Committed on return.** Every write is its own transaction, committed before the
  method returns: a caller writes state *before* the side effect it announces, so a
  process killed at any instant leaves a store ``guardrail resume`` continues from.
- **Safe to repeat.** A write repeated with the same arguments (after a crash, or after
  a lost connection that may or may not have committed it) leaves the store as one
  call would: upserts by idempotency key (steps, ticks, baselines, incidents,
  deliveries by revision); for the few writes that append (``add_event``,
  ``start_step``'s attempt count, ``spool``) the backend makes a retried call
  exactly-once itself.
- **Redacted.** Every value written passes through ``redactor`` first: secrets
  resolved from ``${env:...}`` never reach the storage, in any table.
- **Shared.** Several processes (on several machines, for a server database) use one
  store at once; ``try_lock`` and ``claim_chain`` are the only coordination, and each is
  atomic in the store.
- **Plain data.** Arguments and results are dicts, lists, tuples, strings and numbers;
  times are epoch seconds (the rollout clock's for events, steps and ticks; the wall
  clock for locks and claims).

Errors: ``NotFound`` for an unknown rollout or incident; ``StoreError`` when the store
cannot be used (its ``exit_code`` says what a command should exit with: a database
unreachable past its retry bound halts a rollout, exit 3).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterable, Protocol, runtime_checkable

from guardrail.secrets import Redactor

Row = dict[str, Any]
TickRow = tuple[str, str, int, float, list[list]]
"""``(phase, policy, tick, at, evaluations)``, each evaluation a list in the order of ``schema.PACKED``."""


@runtime_checkable
class Store(Protocol):
    redactor: Redactor
    """Applied to everything written; callers ``add`` the secrets of the plans they load."""
    location: str
    """Where the state lives, for messages: a file path, or a database URL without its password."""
    state_dir: Path
    """The local folder plugins keep their own files in (the journal sink, the simulated
    fleet): the state file's folder, or for a server database the working folder."""
    MEASUREMENT_COLUMNS: tuple[str, ...]
    """The fields of a measurement row (``measurements``), in order."""

    def close(self) -> None: ...

    # -- rollouts ------------------------------------------------------------------------

    def create_rollout(self, row: Row) -> None:
        """A new rollout in state ``pending``: ``id``, ``service``, ``version``, ``previous``,
        ``plan_path``, ``plan_digest``, ``clock``, ``clock_start``."""

    def rollout(self, rollout_id: str) -> Row:
        """One rollout's row (a unique id prefix is enough), ``requests`` decoded; ``NotFound``."""

    def rollouts(self, service: str | None = None, limit: int = 50) -> list[Row]:
        """The latest rollouts first, of one service or all."""

    def set_state(self, rollout_id: str, state: str, *, outcome: str | None = None, reason: str | None = None,
                  finished: bool = False) -> None: ...

    def reopen(self, rollout_id: str) -> None:
        """A finished rollout runs again (the rollback of a promoted release): no outcome yet."""

    def request(self, rollout_id: str, name: str, value: Any) -> None:
        """Record a person's request (pause, abort, approval) for the running process to see."""

    def requests(self, rollout_id: str) -> Row: ...

    # -- events --------------------------------------------------------------------------

    def add_event(self, rollout_id: str, at: float, kind: str, data: Row) -> Row:
        """Append an event; returns it as stored (redacted, with its ``seq``)."""

    def events(self, rollout_id: str, kind: str | tuple[str, ...] | None = None) -> list[Row]:
        """Events in order, each ``{seq, at, kind, **data}``; only those of ``kind`` if given."""

    def last_time(self, rollout_id: str) -> float | None:
        """The rollout clock's latest recorded time (events and ticks)."""

    # -- steps: side effects by idempotency key --------------------------------------------

    def step(self, rollout_id: str, key: str) -> Row | None: ...

    def steps(self, rollout_id: str, prefix: str = "") -> list[Row]:
        """Steps whose key starts with ``prefix``, in the order started."""

    def start_step(self, rollout_id: str, key: str, at: float, detail: Any = None) -> None:
        """Committed before the side effect; a second start of a key (after a crash) counts an attempt."""

    def update_step_detail(self, rollout_id: str, key: str, detail: Any) -> None: ...

    def finish_step(self, rollout_id: str, key: str, ok: bool, at: float, detail: Any = None) -> None: ...

    # -- measurements and baselines ---------------------------------------------------------

    def add_ticks(self, rollout_id: str, ticks: list[TickRow], coverage: list[tuple] = ()) -> None:
        """Store evaluation ticks in one transaction; a tick already stored gains the
        evaluations (by region and check) it lacked. ``coverage``: the covered time after
        these ticks, ``(phase, region, policy, check, covered, uncovered, spans, applies)``,
        written in the same transaction."""

    def coverage(self, rollout_id: str, phase: str | None = None) -> list[Row]:
        """Covered time per phase, region, policy and check (``judging.coverage``)."""

    def measurements(self, rollout_id: str, phase: str | None = None, *, region: str | None = None,
                     check: str | None = None) -> list[Row]:
        """Every evaluation in the order stored: ``MEASUREMENT_COLUMNS`` plus ``id``, ``rollout_id``, ``check``."""

    def measurements_by_id(self, ids: Iterable[int]) -> dict[int, Row]: ...

    def measurement_count(self, rollout_id: str) -> int: ...

    def verdict_groups(self, rollout_id: str) -> list[tuple]:
        """Per (phase, region, policy, check): ``(phase, region, policy, check, count, first_at,
        last_at, fails, inconclusives, first_fail_id, last_id, first_breach_at)``, for reports."""

    def measurement_buckets(self, rollout_id: str, start: float, width: float, count: int) -> list[tuple]:
        """Evaluations in ``count`` time buckets of ``width`` from ``start``, per (policy, check,
        region, bucket): ``(policy, check, region, bucket, first_at, last_at, min, max, worst,
        threshold, reference)``, worst 3 fail / 2 inconclusive / 1 pending / 0 pass; ordered."""

    def set_baseline(self, rollout_id: str, region: str, policy: str, check: str, value: float | None,
                     window: tuple[float, float], evidence: Row) -> None: ...

    def baselines(self, rollout_id: str) -> dict[tuple[str, str, str], Row]: ...

    # -- locks: one rollout per service ------------------------------------------------------

    def try_lock(self, service: str, rollout_id: str, holder: str, host: str, pid: int, lease: float,
                 stale: Callable[[Row], bool]) -> Row | None:
        """Take the service's lock atomically; return the holder's row when someone else
        has it and ``stale(row)`` says it may not be taken over."""

    def renew_lock(self, service: str, rollout_id: str, holder: str, lease: float) -> bool:
        """Extend this holder's lease; False when it no longer holds the lock."""

    def lock(self, service: str) -> Row | None: ...

    def release_lock(self, service: str, rollout_id: str | None = None, holder: str | None = None) -> bool: ...

    # -- the incident outbox ------------------------------------------------------------------

    def save_incident(self, incident: Row) -> None: ...

    def incident(self, incident_id: str) -> Row:
        """By incident id or rollout id; ``NotFound``."""

    def incidents(self, limit: int = 50) -> list[Row]: ...

    def sink_ref(self, incident_id: str, sink: str) -> Row | None: ...

    def set_sink_ref(self, incident_id: str, sink: str, ref: Row | None) -> None: ...

    def enqueue_delivery(self, incident: Row, sink: str) -> bool:
        """Queue one revision of an incident for a sink; idempotent per (incident, sink, revision)."""

    def deliveries(self, status: str | None = None, *, incident_id: str | None = None,
                   sink: str | None = None) -> list[Row]:
        """Outbox rows in the order queued (the order a sink must see them)."""

    def record_delivery(self, delivery_id: int, status: str, error: str | None = None) -> None: ...

    def requeue_rejected(self, incident_id: str | None = None) -> int: ...

    def claim_chain(self, incident_id: str, sink: str, holder: str, lease: float,
                    gone: Callable[[str], bool] | None = None) -> Row | None:
        """Claim (or renew) delivering one (incident, sink) chain; None when ``holder`` has
        it, else the live claim of whoever does."""

    def release_chain(self, incident_id: str, sink: str, holder: str) -> None: ...


__all__ = ["Store", "Row", "TickRow"]

"""One rollout per service at a time.

The lock belongs to a rollout. A running process renews its lease; a lock whose lease
expired, or whose process is gone from this host, may be taken over. A halted
rollout (or one whose rollback failed) keeps its lock with no expiry: its regions are
not in a state another rollout should start from. ``guardrail unlock`` frees it.

A takeover is recorded in the events of both rollouts (``lock.taken_over`` in the new
holder's, ``lock.lost`` in the previous one's), naming the previous holder and why
it could no longer hold the lock.

A pid checked on this host may belong to another process by now (pids are reused):
such a lock looks held until its lease expires, which is slower but safe; the
takeover then says that the pid still runs.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

from guardrail.errors import LockLostError, LockedError, NotFound
from guardrail.state.protocol import Store

NEVER = 1e18
HOST = os.environ.get("GUARDRAIL_HOST") or socket.gethostname()
"""This runner's name in locks. Its pids are checked only against locks of the same name:
set ``GUARDRAIL_HOST`` where runners sharing a database may share a hostname (containers),
or a live lock of another machine would look like a dead process of this one."""


def process_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a killed child that nobody reaped yet is a zombie: it is gone for our purposes
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


PROCESS_GONE = "process-gone"
LEASE_EXPIRED = "lease-expired"
TAKEN_OVER = "taken-over"
"""A person took the lock of a halted or interrupted rollout (``--take-over "reason"``)."""


def stale_reason(row: dict) -> str | None:
    """Why a lock row may be taken over (``process-gone``, ``lease-expired``), or None."""
    if row["host"] == HOST and row["pid"] > 0 and not process_alive(row["pid"]):
        return PROCESS_GONE
    if row["expires_at"] < time.time():
        return LEASE_EXPIRED
    return None


def _stale(row: dict) -> bool:
    return stale_reason(row) is not None


@dataclass(frozen=True)
class Takeover:
    """A lock taken from a holder that could no longer hold it."""

    service: str
    rollout_id: str
    """The previous holder's rollout (this very rollout when a resume took it from its dead process)."""
    holder: str
    host: str
    pid: int
    since: float
    """When the previous holder acquired the lock (epoch seconds)."""
    expires_at: float
    why: str
    """``process-gone`` (its pid no longer runs on this host) or ``lease-expired``."""
    at: float
    """When it was taken over (epoch seconds, the wall clock)."""
    reason: str | None = None
    """A person's reason, when a person took it over."""

    @classmethod
    def of(cls, service: str, row: dict[str, Any], why: str, reason: str | None = None) -> Takeover:
        return cls(service, row["rollout_id"], row["holder"], row["host"], row["pid"], row["acquired_at"],
                   row["expires_at"], why, time.time(), reason)

    @property
    def pid_running(self) -> bool | None:
        """Whether the previous holder's pid still runs: only known on this host. True
        with an expired lease means a hung holder, or a pid reused by another process."""
        if self.host != HOST or self.pid <= 0:
            return None
        return self.why != PROCESS_GONE

    def facts(self) -> dict[str, Any]:
        return {"service": self.service, "why": self.why, "host": self.host, "pid": self.pid,
                "pid_running": self.pid_running, "held_since": self.since, "lease_expires_at": self.expires_at,
                "taken_at": self.at, **({"reason": self.reason} if self.reason else {})}


class Lease:
    """The lock a running process holds for one rollout.

    A heartbeat thread renews it every quarter of its duration for as long as the
    process holds it, so a deploy or rollback that takes longer than the lease does
    not let another rollout in; a killed process stops renewing and the lease expires.
    """

    def __init__(self, store: Store, service: str, rollout_id: str, *, duration: float = 120.0):
        self.store, self.service, self.rollout_id, self.duration = store, service, rollout_id, duration
        self._renewed = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.holder = ""
        self.took_over: Takeover | None = None
        """Set by ``acquire`` when it took the lock from a holder that could no longer hold it."""
        self.lost = threading.Event()
        """Set when the lock turned out to be someone else's (see ``check``)."""

    def _heartbeat(self) -> None:
        while not self._stop.wait(self.duration / 4):
            try:
                if not self.store.renew_lock(self.service, self.rollout_id, self.holder, self.duration):
                    self.lost.set()  # taken over while this process stalled: ``check`` says so
                    return
            except Exception:  # the next beat tries again; the lease has slack for it
                pass

    def _start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._heartbeat, name="guardrail-lease", daemon=True)
            self._thread.start()

    def _stop_heartbeat(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def acquire(self, *, takeover_own: bool = False, take_over: str | None = None) -> None:
        """Take the service's lock, or raise ``LockedError`` naming its holder.

        ``takeover_own``: the lock may already belong to this rollout (a resume), left
        by a process of it that is gone or halted. ``take_over``: a person's reason to
        take the lock of a halted or interrupted rollout too (never a live process's).
        """
        pid = os.getpid()
        self.holder = f"{HOST}:{pid}"
        taken: list[Takeover] = []

        def stale(row: dict) -> bool:
            if takeover_own and row["rollout_id"] == self.rollout_id:
                return True
            why = stale_reason(row)
            if why is None and take_over and row["pid"] == 0:
                why = TAKEN_OVER
            if why is not None:
                taken.append(Takeover.of(self.service, row, why, take_over))
            return why is not None

        own = self.store.lock(self.service) if takeover_own else None
        holder = self.store.try_lock(self.service, self.rollout_id, self.holder, HOST, pid, self.duration, stale)
        if holder is not None:
            raise LockedError(self.service, holder["holder"], holder["rollout_id"])
        if own is not None and own["rollout_id"] == self.rollout_id and own["pid"] not in (0, pid):
            # Left by an earlier process of this rollout (``check_resumable`` made sure
            # it is not running): that is a takeover too. A halted rollout's lock (pid
            # 0) is simply its own.
            why = stale_reason(own)
            if why is not None:
                taken.append(Takeover.of(self.service, own, why))
        self.took_over = taken[-1] if taken else None
        self._renewed = time.monotonic()
        self._start()

    def record_takeover(self, emit: Callable[..., None]) -> None:
        """Record the takeover ``acquire`` made, if any: ``lock.taken_over`` through
        ``emit`` (the events of this lease's rollout, once it exists in the store), and
        ``lock.lost`` in the events of the previous holder's rollout."""
        taken = self.took_over
        if taken is None:
            return
        own = taken.rollout_id == self.rollout_id
        emit("lock.taken_over", previous_rollout=taken.rollout_id, previous_holder=taken.holder, own=own,
             **taken.facts())
        if own:
            return
        try:
            previous = self.store.rollout(taken.rollout_id)
        except NotFound:  # killed between taking the lock and storing its rollout
            return
        if previous["id"] != taken.rollout_id:  # ``rollout`` also matches a prefix
            return
        # Dated at that rollout's own last recorded time, not now: its clock may be
        # virtual, and a resume of it continues from its latest event (``Guardrail.resume``).
        at = self.store.last_time(taken.rollout_id) or previous["clock_start"]
        self.store.add_event(taken.rollout_id, at, "lock.lost",
                             {"by_rollout": self.rollout_id, "by_holder": self.holder, **taken.facts()})

    def renew(self) -> None:
        if time.monotonic() - self._renewed > min(10.0, self.duration / 4):
            if not self.store.renew_lock(self.service, self.rollout_id, self.holder, self.duration):
                self.lost.set()
            self._renewed = time.monotonic()
        self.check()

    def check(self) -> None:
        """Raise ``LockLostError`` unless this process still holds the lock. Called before
        every side effect and every tick: a process that stalled past its lease (a stopped
        VM, a debugger, a swap storm) and had its lock taken over changes nothing more."""
        if not self.lost.is_set() and self._holds():
            return
        self.lost.set()
        raise LockLostError(self.service, self.rollout_id, self.store.lock(self.service))

    def _holds(self) -> bool:
        row = self.store.lock(self.service)
        return row is not None and row["rollout_id"] == self.rollout_id and row["holder"] == self.holder

    def keep(self, why: str) -> None:
        """Keep the lock after this process ends (halted, rollback failed)."""
        self._stop_heartbeat()
        if self.lost.is_set() or not self._holds():
            return  # someone else's now
        self.store.try_lock(self.service, self.rollout_id, why, HOST, 0, NEVER - time.time(), lambda row: False)

    def release(self) -> None:
        self._stop_heartbeat()
        if not self.lost.is_set():
            self.store.release_lock(self.service, self.rollout_id, self.holder)


def check_resumable(store: Store, service: str, rollout_id: str) -> None:
    """Refuse to resume a rollout that a live process is still running."""
    row = store.lock(service)
    if row is None:
        return
    if row["rollout_id"] != rollout_id:
        if not _stale(row):
            raise LockedError(service, row["holder"], row["rollout_id"])
        return
    if row["pid"] > 0 and row["pid"] != os.getpid() and not _stale(row):
        raise LockedError(service, row["holder"], row["rollout_id"])

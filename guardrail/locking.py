"""One rollout per service at a time.

The lock belongs to a rollout. A running process renews its lease; a lock whose lease
expired, or whose process is gone from this host, may be taken over. A halted
rollout (or one whose rollback failed) keeps its lock with no expiry: its regions are
not in a state another rollout should start from. ``guardrail unlock`` frees it.
"""

from __future__ import annotations

import os
import socket
import threading
import time

from .errors import LockedError
from .store import SQLiteStore

NEVER = 1e18
HOST = socket.gethostname()


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


def _stale(row: dict) -> bool:
    if row["expires_at"] < time.time():
        return True
    return row["host"] == HOST and row["pid"] > 0 and not process_alive(row["pid"])


class Lease:
    """The lock a running process holds for one rollout.

    A heartbeat thread renews it every quarter of its duration for as long as the
    process holds it, so a deploy or rollback that takes longer than the lease does
    not let another rollout in; a killed process stops renewing and the lease expires.
    """

    def __init__(self, store: SQLiteStore, service: str, rollout_id: str, *, duration: float = 120.0):
        self.store, self.service, self.rollout_id, self.duration = store, service, rollout_id, duration
        self._renewed = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _heartbeat(self) -> None:
        while not self._stop.wait(self.duration / 4):
            try:
                self.store.renew_lock(self.service, self.rollout_id, self.duration)
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

    def acquire(self, *, takeover_own: bool = False) -> None:
        pid = os.getpid()

        def stale(row: dict) -> bool:
            if takeover_own and row["rollout_id"] == self.rollout_id:
                return True
            return _stale(row)

        holder = self.store.try_lock(self.service, self.rollout_id, f"{HOST}:{pid}", HOST, pid, self.duration, stale)
        if holder is not None:
            raise LockedError(self.service, holder["holder"], holder["rollout_id"])
        self._renewed = time.monotonic()
        self._start()

    def renew(self) -> None:
        if time.monotonic() - self._renewed > min(10.0, self.duration / 4):
            self.store.renew_lock(self.service, self.rollout_id, self.duration)
            self._renewed = time.monotonic()

    def keep(self, why: str) -> None:
        """Keep the lock after this process ends (halted, rollback failed)."""
        self._stop_heartbeat()
        self.store.try_lock(self.service, self.rollout_id, why, HOST, 0, NEVER - time.time(), lambda row: True)

    def release(self) -> None:
        self._stop_heartbeat()
        self.store.release_lock(self.service, self.rollout_id)


def check_resumable(store: SQLiteStore, service: str, rollout_id: str) -> None:
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

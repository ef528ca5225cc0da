"""Who drives a rollout now, told from the store and the service's lock.

A rollout that is not finished is in one of these conditions:

- ``running``: a live process holds its lock (on this host its pid answers; on another
  host its lease is still being renewed);
- ``dead``: its lock names a process that is gone from this host, or whose lease
  expired: "no process has driven it since 17:05 (pid 22921 on host ci-7)";
- ``interrupted``: a signal stopped it at a safe point; it keeps its lock like a halted
  rollout, and says by whom and where;
- ``halted``: halted, paused or waiting for approval; it keeps its lock for a person;
- ``superseded``: another rollout took its lock over; it changes nothing more unless a
  person takes the service back (``--take-over "reason"``);
- ``unlocked``: it holds no lock (``guardrail unlock`` freed it).

``story`` is that condition as a sentence, for ``status`` and for the refusal of a new
rollout over one that is interrupted or dead.
"""

from __future__ import annotations

import time
from typing import Any

from guardrail.state.locks import HOST, stale_reason


def _clock(epoch: float | None) -> str:
    if not epoch:
        return "?"
    local = time.localtime(epoch)
    day = "" if time.strftime("%Y-%m-%d", local) == time.strftime("%Y-%m-%d") else time.strftime("%Y-%m-%d ", local)
    return day + time.strftime("%H:%M", local)


def _latest(events: list[dict[str, Any]], kind: str) -> dict[str, Any] | None:
    found = [e for e in events if e["kind"] == kind]
    return found[-1] if found else None


def superseded_by(store: Any, rollout_id: str) -> dict[str, Any] | None:
    """The ``lock.lost`` event that superseded the rollout, unless a person took the
    service back since (a ``person.acted`` take-over after it)."""
    events = store.events(rollout_id, ("lock.lost", "person.acted"))
    lost = _latest(events, "lock.lost")
    if lost is None:
        return None
    back = [e for e in events if e["kind"] == "person.acted" and e.get("action") == "take-over"
            and e["seq"] > lost["seq"]]
    return None if back else lost


def driver(store: Any, row: dict[str, Any]) -> dict[str, Any] | None:
    """The rollout's condition (see the module), or None when it is finished."""
    if row["finished_at"] and row["state"] != "rollback_failed":
        return None
    rid = row["id"]
    events = store.events(rid, ("lock.lost", "person.acted", "rollout.interrupted", "rollout.resumed"))
    lock = store.lock(row["service"])
    lost = superseded_by(store, rid)
    if lock is None or lock["rollout_id"] != rid:
        if lost is not None:
            return {"condition": "superseded", "running": False, "by_rollout": lost.get("by_rollout"),
                    "story": f"superseded: rollout {lost.get('by_rollout')} took over the lock of {row['service']}"
                             f" at {_clock(lost.get('taken_at'))}; it changes nothing more"}
        return {"condition": "unlocked", "running": False,
                "story": f"no process drives it and it holds no lock of {row['service']}"}
    since = store.last_time(rid) if row["clock"] == "real" else row["updated_at"]
    if lock["pid"] == 0:
        stop = _latest(events, "rollout.interrupted")
        resumed = _latest(events, "rollout.resumed")
        if stop is not None and (resumed is None or resumed["seq"] < stop["seq"]):
            return {"condition": "interrupted", "running": False, "signal": stop.get("signal"), "by": stop.get("by"),
                    "host": stop.get("host"), "pid": stop.get("pid"), "since": stop.get("wall"),
                    "story": f"interrupted by {stop.get('signal')} at {_clock(stop.get('wall'))} ({stop.get('by')} on "
                             f"{stop.get('host')}, pid {stop.get('pid')}) while {stop.get('where')}; no process drives it"}
        return {"condition": "halted", "running": False,
                "story": f"{row['state']}; no process drives it: it waits for a person"}
    why = stale_reason(lock)
    where = f"pid {lock['pid']} on host {lock['host']}"
    if why is None:
        here = " (this host)" if lock["host"] == HOST else ""
        return {"condition": "running", "running": True, "pid": lock["pid"], "host": lock["host"],
                "story": f"driven by {where}{here}"}
    return {"condition": "dead", "running": False, "pid": lock["pid"], "host": lock["host"], "since": since,
            "why": why, "story": f"no process has driven it since {_clock(since)} ({where}"
                                 + (", gone" if why == "process-gone" else ", its lease expired") + ")"}

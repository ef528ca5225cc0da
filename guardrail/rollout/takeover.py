"""Who may act on a service: superseded rollouts, rollouts over interrupted or dead ones,
and the rollback of a promoted release.

- A rollout whose lock another rollout took over is **superseded**: it can never act
  again (``resume``, ``abort``, ``approve`` refuse, exit 5, naming the rollout that holds
  the service), unless a person takes the service back with a recorded
  ``--take-over "reason"``.
- A new rollout (or the resume of another one) over a rollout that was **interrupted**
  or whose **process died** is refused (exit 5) with that rollout's story: its regions
  may be half-way, and a person decides. ``--take-over "reason"`` starts over it,
  recorded in both rollouts. A lock whose rollout this store does not hold (killed
  before it stored anything: nothing deployed) is taken over as before.
- A promoted release can be rolled back (``guardrail rollback``) only while it is the
  service's latest rollout that got as far as deploying.
"""

from __future__ import annotations

from typing import Any

from guardrail.errors import InterruptedRolloutError, NotFound, StateError, SupersededError
from guardrail.state.liveness import driver, superseded_by
from guardrail.state.locks import stale_reason


def refuse_superseded(store: Any, row: dict[str, Any], take_over: str | None) -> None:
    """Raise ``SupersededError`` for a superseded rollout, unless a person takes over."""
    lost = superseded_by(store, row["id"])
    if lost is None or take_over:
        return
    lock = store.lock(row["service"])
    if lock is not None and lock["rollout_id"] != row["id"]:
        now = f"rollout {lock['rollout_id']} ({lock['holder']}) holds it now"
    else:
        now = "nobody holds it now"
    try:
        newer = store.rollout(lost["by_rollout"])
        now += f"; rollout {newer['id']} is {newer['state']}"
    except NotFound:
        pass
    raise SupersededError(row["service"], row["id"], lost.get("by_rollout", "?"), lost.get("by_holder", "?"), now)


def refuse_over_stale(store: Any, service: str, rollout_id: str, take_over: str | None) -> None:
    """Raise ``InterruptedRolloutError`` when the service's lock belongs to another rollout
    of this store that was interrupted or whose process died, unless ``take_over``."""
    lock = store.lock(service)
    if lock is None or lock["rollout_id"] == rollout_id or take_over:
        return
    if lock["pid"] != 0 and stale_reason(lock) is None:
        return  # a live process: the lock itself refuses (LockedError)
    try:
        other = store.rollout(lock["rollout_id"])
    except NotFound:
        return
    if other["id"] != lock["rollout_id"]:
        return
    condition = driver(store, other)
    if condition is None or condition["condition"] not in ("interrupted", "dead"):
        return  # halted for a person, or finished: the lock (or nothing) answers as before
    oid = other["id"]
    hint = (f"`guardrail resume {oid}` continues it, `guardrail abort {oid}` rolls it back; to start over it anyway, "
            f"rerun with --take-over \"reason\" (recorded)")
    raise InterruptedRolloutError(service, lock["holder"], oid,
                                  f"{other['state']} ({other['version']}), {condition['story']}", hint)


def check_rollback(store: Any, row: dict[str, Any]) -> str:
    """``done`` when ``guardrail rollback`` already rolled this release back, ``continue``
    when it was asked before and did not finish, ``start`` when it may start now; raise
    ``StateError`` when it may not."""
    rid = row["id"]
    if row["requests"].get("rollback"):
        return "done" if row["finished_at"] and row["state"] != "rollback_failed" else "continue"
    if row["state"] != "promoted":
        raise StateError(f"rollout {rid} is {row['state']}, not a promoted release: "
                         + ("`guardrail abort` rolls back a rollout that did not finish"
                            if not row["finished_at"] else "there is nothing of it to roll back"))
    later = [r for r in store.rollouts(row["service"], limit=1000)
             if r["created_at"] > row["created_at"] and r["state"] not in ("refused",)]
    if later:
        raise StateError(f"rollout {rid} is not the latest release of {row['service']}: rollout {later[-1]['id']} "
                         f"({later[-1]['version']}, {later[-1]['state']}) came after it; roll that one back first")
    return "start"

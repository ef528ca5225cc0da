"""People on the record: who paused, resumed, approved, aborted, unlocked, overrode a
window, took a service over or rolled a release back, and why.

Every such act is a ``person.acted`` event in the rollout's events: ``action``, ``by``
(``--by``, else the first of ``GITHUB_ACTOR``, ``GITLAB_USER_LOGIN``, ``USER`` that is
set), ``reason``, and where it was typed (``host``, ``pid``) and when (``wall``, epoch
seconds). Status, the HTML report and the incident read them from there.
"""

from __future__ import annotations

import os
import socket
import time
from typing import Any, Mapping

IDENTITY_ENV = ("GITHUB_ACTOR", "GITLAB_USER_LOGIN", "USER")
"""Where a person's name comes from when ``--by`` is not given, first set wins."""

ACTIONS = {"pause": "paused", "resume": "resumed", "approve": "approved", "abort": "asked to abort",
           "unlock": "unlocked", "override-window": "overrode a change freeze", "take-over": "took the service over",
           "rollback": "asked to roll back"}
"""Each act, and its verb in a sentence."""


def identity(by: str | None = None, environ: Mapping[str, str] | None = None) -> str:
    """The person acting: ``by`` when given, else from the environment, else ``unknown``."""
    if by and by.strip():
        return by.strip()
    env = os.environ if environ is None else environ
    for name in IDENTITY_ENV:
        if env.get(name, "").strip():
            return env[name].strip()
    return "unknown"


def act(action: str, by: str | None = None, reason: str | None = None, *,
        environ: Mapping[str, str] | None = None, **detail: Any) -> dict[str, Any]:
    """The record of one act (the data of a ``person.acted`` event)."""
    return {"action": action, "by": identity(by, environ), "reason": reason, "host": socket.gethostname(),
            "pid": os.getpid(), "wall": time.time(), **detail}


def record(store: Any, rollout_id: str, entry: dict[str, Any]) -> dict[str, Any]:
    """Store ``entry`` in the rollout's events. Dated on the rollout's own clock (its last
    recorded time when it runs on simulated time, so a resume of it is not moved), with
    the wall-clock time in ``wall``."""
    row = store.rollout(rollout_id)
    at = entry["wall"] if row["clock"] == "real" else (store.last_time(row["id"]) or row["clock_start"])
    return store.add_event(row["id"], at, "person.acted", entry)


def on_record(store: Any, rollout_id: str) -> list[dict[str, Any]]:
    """Every act of a person on the rollout, oldest first, for status and reports."""
    return [{"action": e["action"], "by": e["by"], "reason": e.get("reason"), "host": e.get("host"),
             "at": e.get("wall", e["at"]), **({"wave": e["wave"]} if e.get("wave") else {})}
            for e in store.events(rollout_id, "person.acted")]


def sentence(e: dict[str, Any]) -> str:
    """``alice approved wave main: CHG-1042 approved``."""
    what = ACTIONS.get(e.get("action", ""), e.get("action", "acted"))
    if e.get("wave"):
        what += f" wave {e['wave']}"
    return f"{e.get('by') or 'unknown'} {what}" + (f": {e['reason']}" if e.get("reason") else "")

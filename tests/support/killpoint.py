"""Test plugin: SIGKILL this very process at an event it observes.

Loaded into a ``guardrail`` subprocess with ``GUARDRAIL_PLUGINS=killpoint`` (this
folder on ``PYTHONPATH``) and ``KILLPOINT_AT``: ``KIND#N``, the N-th event of that kind
(``state.baking#2``), or a plain number, the N-th event of any kind. Events are emitted
right after the state they announce is committed and before the side effect runs, so
killing here is killing between "decided" and "done". Name kinds the rollout's own
thread emits: ``incident.delivered`` comes from delivery threads, so where it falls
among the others varies from run to run (that is also why plain numbers drift).
``KILLPOINT_LOG`` appends every event seen as ``N KIND``.
"""

import os
import signal
import threading

from guardrail import hookimpl

_seen = 0
_by_kind: dict[str, int] = {}
_lock = threading.Lock()  # events also come from delivery threads: count each exactly once


def _target() -> tuple[str | None, int]:
    raw = os.environ.get("KILLPOINT_AT", "") or ""
    if not raw or raw.isdigit():
        return None, int(raw or 0)
    kind, _, nth = raw.partition("#")
    return kind, int(nth or 1)


@hookimpl
def guardrail_on_event(event):
    global _seen
    with _lock:
        _seen += 1
        kind = event["kind"]
        _by_kind[kind] = _by_kind.get(kind, 0) + 1
        log = os.environ.get("KILLPOINT_LOG")
        if log:
            with open(log, "a") as f:
                f.write(f"{_seen} {kind}\n")
        wanted, nth = _target()
        if nth and (_by_kind[kind] if wanted == kind else _seen if wanted is None else 0) == nth:
            os.kill(os.getpid(), signal.SIGKILL)

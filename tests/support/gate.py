"""Test plugin: stop this very process at an event it observes until the test opens a gate.

Loaded into a ``guardrail`` subprocess with ``GUARDRAIL_PLUGINS=gate`` (this folder on
``PYTHONPATH``) and ``GATE_AT=KIND#N`` (the N-th event of that kind). There it creates
the file ``GATE_REACHED`` and waits (at most 10 minutes) for the file ``GATE_OPEN``:
the test does what it wants to the world meanwhile (stops the database, kills the
process, starts a rival) and then opens the gate.
"""

import os
import threading
import time
from pathlib import Path

from guardrail import hookimpl

_by_kind: dict[str, int] = {}
_lock = threading.Lock()


@hookimpl
def guardrail_on_event(event):
    wanted, _, nth = (os.environ.get("GATE_AT") or "").partition("#")
    with _lock:
        _by_kind[event["kind"]] = _by_kind.get(event["kind"], 0) + 1
        if event["kind"] != wanted or _by_kind[event["kind"]] != int(nth or 1):
            return
    Path(os.environ["GATE_REACHED"]).write_text(str(os.getpid()))
    deadline = time.monotonic() + 600
    while not Path(os.environ["GATE_OPEN"]).exists() and time.monotonic() < deadline:
        time.sleep(0.05)

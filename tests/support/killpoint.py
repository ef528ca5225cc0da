"""Test plugin: SIGKILL this very process at the N-th event it observes.

Loaded into a ``guardrail`` subprocess with ``GUARDRAIL_PLUGINS=killpoint`` (this
folder on ``PYTHONPATH``) and ``KILLPOINT_AT=N``. Events are emitted right after the
state they announce is committed and before the side effect runs, so killing here is
killing between "decided" and "done".
"""

import os
import signal
import threading

from guardrail import hookimpl

_seen = 0
_lock = threading.Lock()  # events also come from delivery threads: count each exactly once


@hookimpl
def guardrail_on_event(event):
    global _seen
    with _lock:
        _seen += 1
        seen = _seen
        target = int(os.environ.get("KILLPOINT_AT", "0") or 0)
        log = os.environ.get("KILLPOINT_LOG")
        if log:
            with open(log, "a") as f:
                f.write(f"{seen} {event['kind']}\n")
        if target and seen == target:
            os.kill(os.getpid(), signal.SIGKILL)

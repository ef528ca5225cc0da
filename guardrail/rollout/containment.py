"""An unexpected error inside a rollout: contained, recorded, and never a silent half-state.

The engine's procedure is made of committed decisions and idempotent steps, so a bug
(in guardrail or in a plugin's code that runs outside a step) can be contained:

- the error is recorded as a ``rollout.error`` event (its type, message and where it was
  raised) and named in the rollout's reason;
- when a failure was already decided, the decision stands and the rollback is still a
  step to run: every target region is rolled back (the regions already rolled back are
  skipped, as on any resume) before anything else;
- the rollout then ends ``halted``, keeping its lock, so ``guardrail resume`` continues
  it once the cause is fixed, or ``rollback_failed`` (exit 4) when a rollback failed.

It never ends ``rolled_back`` (exit 1) without a completed rollback and verified
recovery, and never leaves a rollout that no command can continue. A lost lock is not
contained: another rollout holds the service, and this process changes nothing more.
"""

from __future__ import annotations

import traceback
from pathlib import Path
from typing import TYPE_CHECKING

from guardrail.errors import LockLostError
from guardrail.judging.decisions import Failure

if TYPE_CHECKING:
    from guardrail.rollout.engine import Engine


def where(exc: BaseException) -> str:
    """The innermost frame that raised ``exc``: ``file.py:LINE in function``."""
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return "?"
    last = frames[-1]
    return f"{Path(last.filename).name}:{last.lineno} in {last.name}"


def contain(engine: Engine, exc: Exception) -> str:
    """Record ``exc``, finish a decided rollback, and leave the rollout halted (or
    ``rollback_failed``); return the outcome."""
    error = f"{type(exc).__name__}: {exc}"
    at = where(exc)
    rid = engine.id
    engine.journal.emit("rollout.error", error=error, where=at)
    decided = engine.journal.step("decision:failed")
    if decided is None:
        reason = (f"internal error: {error} (at {at}); nothing more was changed. A person is needed:"
                  f" `guardrail resume {rid}` continues, `guardrail abort {rid}` rolls back")
        engine._halt(reason, error=error)
        return "halted"
    targets = engine._rollback_targets(Failure(**decided["detail"]))
    broken = []
    for region in targets:
        try:
            if not engine._rollback_region(region).ok:
                broken.append(region)
        except LockLostError:
            raise
        except Exception as again:  # the rollback itself hit the bug: say so, try the next region
            engine.journal.emit("rollout.error", error=f"{type(again).__name__}: {again}", where=where(again),
                                region=region)
            broken.append(region)
    if broken:
        reason = (f"internal error: {error} (at {at}); rollback failed in {', '.join(broken)}:"
                  " a person is needed now")
        engine.transition("rollback_failed", outcome="rollback_failed", reason=reason, finished=True, error=error)
        engine.lease.keep(f"rollback failed for rollout {rid}")
        return "rollback_failed"
    reason = (f"internal error: {error} (at {at}) after the failure was decided; rolled back "
              f"{', '.join(targets) or 'nothing (no region was deployed)'} but recovery was not verified."
              f" A person is needed: `guardrail resume {rid}` continues")
    engine._halt(reason, error=error, rolled_back=targets)
    return "halted"

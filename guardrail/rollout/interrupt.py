"""Interruptions (SIGINT, SIGTERM) that leave a rollout safe, and said.

A signal never cuts a step in half. The handler only records who asked and where
(``Interruption.request``); the engine looks at it between steps (before a wave
deploys, between the regions of a sequential wave, between ticks of a bake or of the
recovery verification, once the rollback steps are done) and then stops the way a
halt does: the ``rollout.interrupted`` event and the rollout's reason say which signal,
which user on which host and pid, and what the rollout was doing; the lock is kept as a
halted rollout keeps it, and ``guardrail resume`` or ``guardrail abort`` continues.

A deploy that failed *because* of the signal (a terminal's Ctrl-C reaches the deploy
tool too) is not taken for a failed deploy: the step stays unfinished and is repeated,
with the same idempotency key, by the resume. A rollback in progress is finished before
the rollout stops: stopping half-way through a rollback is never the safe choice.

A second SIGINT while the first is being honoured stops at once (``KeyboardInterrupt``),
as a kill would: the rollout is then shown as one whose process died.
"""

from __future__ import annotations

import signal
import threading
import time
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Iterator

from guardrail.clock import SystemClock
from guardrail.state.people import act

if TYPE_CHECKING:
    from guardrail.rollout.engine import Engine

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(Exception):
    """Raised inside the engine at a safe point after a stop was requested."""

    def __init__(self, facts: dict[str, Any], where: str):
        self.facts, self.where = facts, where
        super().__init__(f"interrupted by {facts.get('signal')} while {where}")


class Interruption:
    """A stop request, set from a signal handler (or by a caller), read by the engine."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self.facts: dict[str, Any] | None = None

    @property
    def requested(self) -> bool:
        return self._event.is_set()

    def request(self, signal_name: str = "a request") -> None:
        if self.facts is None:
            self.facts = {"signal": signal_name, **{k: v for k, v in act("interrupt").items()
                                                     if k in ("by", "host", "pid", "wall")}}
        self._event.set()

    def check(self, where: str) -> None:
        """Raise ``Interrupted`` at this safe point if a stop was requested."""
        if self._event.is_set():
            raise Interrupted(self.facts or {}, where)

    def wrap(self, clock: Any) -> Any:
        """``clock`` whose waits end early when a stop is requested (a bake's tick may be
        minutes away; a person pressing Ctrl-C expects an answer now)."""
        return _WakingClock(clock, self._event)

    @contextmanager
    def catch_signals(self) -> Iterator[Interruption]:
        """Turn SIGINT and SIGTERM into a stop request while the block runs (main thread
        only; elsewhere, nothing is installed)."""
        if threading.current_thread() is not threading.main_thread():
            yield self
            return

        def handler(signum: int, frame: Any) -> None:
            if self.requested and signum == signal.SIGINT:
                raise KeyboardInterrupt  # a second Ctrl-C: stop now
            self.request(signal.Signals(signum).name)

        previous = {s: signal.signal(s, handler) for s in SIGNALS}
        try:
            yield self
        finally:
            for s, h in previous.items():
                signal.signal(s, h)


class _WakingClock:
    def __init__(self, clock: Any, event: threading.Event):
        self._clock, self._event = clock, event

    def now(self) -> float:
        return self._clock.now()

    def sleep(self, seconds: float) -> None:
        if not isinstance(self._clock, SystemClock):
            self._clock.sleep(seconds)  # simulated time: no wait to cut short
            return
        deadline = time.monotonic() + max(0.0, seconds)
        while not self._event.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(left, 0.2))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._clock, name)


def halt_interrupted(engine: Engine, stop: Interrupted) -> str:
    """Record the interruption and halt the rollout (keeping its lock); return ``halted``."""
    facts = stop.facts
    who = f"{facts.get('by', 'unknown')} on {facts.get('host', '?')}, pid {facts.get('pid', '?')}"
    engine.journal.emit("rollout.interrupted", where=stop.where, **facts)
    reason = (f"interrupted by {facts.get('signal')} ({who}) while {stop.where}; nothing was left half-done:"
              f" `guardrail resume {engine.id}` continues, `guardrail abort {engine.id}` rolls back")
    engine._halt(reason, interrupted=facts)
    return "halted"

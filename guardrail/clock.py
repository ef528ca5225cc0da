"""Time, injectable: a real clock for production, a virtual one for the simulator,
tests and backtests (hours of bake in milliseconds)."""

from __future__ import annotations

import threading
import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Epoch seconds."""

    def sleep(self, seconds: float) -> None:
        """Wait; a virtual clock just moves forward."""


class SystemClock:
    def now(self) -> float:
        return time.time()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)


class VirtualClock:
    """Moves only when slept. Thread-safe: parallel deploys may read it concurrently."""

    def __init__(self, start: float):
        self._now = float(start)
        self._lock = threading.Lock()

    def now(self) -> float:
        with self._lock:
            return self._now

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            with self._lock:
                self._now += seconds

    def advance_to(self, when: float) -> None:
        with self._lock:
            self._now = max(self._now, float(when))

"""The step journal of one rollout: what it has done and said, in the store.

Every side effect of a rollout (a deploy, a rollback, an action, an incident update)
is a *step* with a key: committed as ``started`` before the call and ``done`` or
``failed`` after it, so a run that finds a finished step never repeats it. Events are
the journal's sentences for people and observers. The engine, the incident lifecycle
and recovery share one journal and talk through it: none of them holds another.

``guard`` runs before every step is started (the engine passes its lease's check, so a
process whose lock was taken over changes nothing more); ``observe`` receives every
event after it is committed (the plugin hook ``guardrail_on_event``).
"""

from __future__ import annotations

from typing import Any, Callable

from guardrail.clock import Clock
from guardrail.state.protocol import Store


class Journal:
    def __init__(self, store: Store, rollout_id: str, clock: Clock, *, guard: Callable[[], None] = lambda: None,
                 observe: Callable[[dict[str, Any]], None] = lambda event: None):
        self.store, self.id, self.clock = store, rollout_id, clock
        self.guard, self.observe = guard, observe

    def now(self) -> float:
        return self.clock.now()

    # -- steps ------------------------------------------------------------------------

    def step(self, key: str) -> dict[str, Any] | None:
        return self.store.step(self.id, key)

    def steps(self, prefix: str = "") -> list[dict[str, Any]]:
        return self.store.steps(self.id, prefix)

    def done(self, key: str) -> bool:
        step = self.store.step(self.id, key)
        return step is not None and step["status"] == "done"

    def begin(self, key: str, detail: Any = None, *, at: float | None = None) -> None:
        """Commit ``key`` as started, before its side effect."""
        self.guard()
        self.store.start_step(self.id, key, self.clock.now() if at is None else at, detail)

    def finish(self, key: str, ok: bool, detail: Any = None) -> None:
        self.store.finish_step(self.id, key, ok, self.clock.now(), detail)

    def mark(self, key: str, detail: Any = None) -> None:
        """Record a decision or a milestone that has no side effect: started and done at once."""
        now = self.clock.now()
        self.store.start_step(self.id, key, now, detail)
        self.store.finish_step(self.id, key, True, now, detail)

    def started_regions(self, order: list[str]) -> list[str]:
        """Regions whose deploy was at least started, in ``order``: not those whose deploy
        failed without ever running (``started: false``), which still run the old version."""
        started = {s["key"].split(":", 1)[1] for s in self.store.steps(self.id, "deploy:")
                   if not (s["status"] == "failed" and (s["detail"] or {}).get("started") is False)}
        return [r for r in order if r in started]

    # -- events -----------------------------------------------------------------------

    def emit(self, kind: str, *, persist: bool = True, **data: Any) -> None:
        """Record an event (``persist``) and tell the observer; an observer's error never
        stops a rollout or a rollback."""
        if persist:
            event = self.store.add_event(self.id, self.clock.now(), kind, data)
        else:
            event = {"rollout_id": self.id, "at": self.clock.now(), "kind": kind, **data}
        try:
            self.observe(event)
        except Exception:
            pass

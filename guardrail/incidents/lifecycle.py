"""The one incident of a failed rollout: its lifecycle, and handing it to the sinks.

Lifecycle, in the words status pages use:

- ``investigating``: a policy failed; recorded in the store at the decision;
- ``identified``: the rollback started (the first update sinks see, sent while the
  rollback runs), with the failing checks; also when a person is needed (a rollback
  or the recovery failed) and when a signal fails again while we watch (a relapse,
  the OpenSRS seed: "marked resolved, then it came back");
- ``monitoring``: every region rolled back, recovery being verified (again after a
  relapse once the checks pass again);
- ``resolved``: the checks held for the whole ``verify_recovery.for``; never earlier.

While open, an update goes out every ``on_failure.update_every`` of the rollout's clock.

Each update is a step keyed ``notify:<status>:<occasion>`` (``notify:update:<tick>``
for the periodic ones), committed with the update queued in the store's outbox: a
resumed run never publishes an update twice, and the outbox (``guardrail.incidents.delivery``)
sends it whether or not this process lives long enough. The dedup key (service +
rollout id) makes every update land on the same incident in every sink.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any, Callable

from guardrail.incidents.delivery import Deliverer, Result, SinkResolver, build_sinks, sink_names
from guardrail.incidents.document import build_incident, dedup_key, incident_id, observed_values
from guardrail.incidents.notify import notify_sinks
from guardrail.text import iso
from guardrail.plugin.interfaces import PluginContext
from guardrail.language.model import PluginRef
from guardrail.language.types import format_duration
from guardrail.plugin.manager import Registry
from guardrail.state.people import on_record
from guardrail.state.protocol import Store

if TYPE_CHECKING:
    from guardrail.judging.decisions import Failure
    from guardrail.language.model import Rollout
    from guardrail.state.journal import Journal

__all__ = ["IncidentTracker", "Notifier", "dedup_key", "incident_id"]


class Notifier:
    """Saves each revision of an incident and queues it for every sink; never blocks."""

    def __init__(self, store: Store, registry: Registry, context: PluginContext, refs: list[PluginRef], *,
                 rollout_id: str | None = None, emit: Callable[..., None] | None = None,
                 notify_refs: list[Any] = ()):
        self.store, self.registry, self.context = store, registry, context
        self.names = [name for name, _ in sink_names(refs)]
        self.resolver = SinkResolver(store, registry)
        if rollout_id is not None:  # built lazily: a rollout that never fails never constructs a sink
            self.resolver.seed(rollout_id, _Lazy(lambda: {**build_sinks(registry, refs, context),
                                                          **notify_sinks(registry, list(notify_refs), context)}))
        self.emit = emit or (lambda kind, **data: None)
        self.own = incident_id(rollout_id) if rollout_id is not None else None
        self.deliverer = Deliverer(store, self.resolver, self._delivered)

    def start(self) -> None:
        """Retry what earlier runs left in the spool (in the background)."""
        self.deliverer.kick()

    def queue(self, incident: dict[str, Any]) -> list[dict[str, Any]]:
        """Save the incident and put it in every sink's outbox; one entry per sink."""
        self.store.save_incident(incident)
        for name in self.names:
            self.store.enqueue_delivery(incident, name)
        return [{"sink": name, "ok": True, "queued": True} for name in self.names]

    def send(self, incident: str) -> None:
        """Start delivering what is queued for the incident (returns at once)."""
        self.deliverer.kick(incident)

    def publish(self, incident: dict[str, Any]) -> list[dict[str, Any]]:
        sinks = self.queue(incident)
        self.send(incident["id"])
        return sinks

    def close(self, grace: float | None = None) -> None:
        """Give deliveries in flight up to ``grace`` (default ``delivery.DRAIN_GRACE``) seconds."""
        self.deliverer.close(grace)

    def _delivered(self, result: Result) -> None:
        if result.incident_id != self.own or result.outcome == "busy":
            return  # an earlier rollout's backlog (its rows say what happened), or another process delivers it
        data = {"incident": result.incident_id, "sink": result.sink, "status": result.status,
                "revision": result.revision}
        if result.ok:
            self.emit("incident.delivered", **data)
        else:
            self.emit("incident.delivery_failed", **data, error=result.error,
                      spooled=result.outcome == "pending", rejected=result.outcome == "rejected")


class _Lazy(dict):
    """A dict of sinks built on first use (by whichever delivery thread comes first)."""

    def __init__(self, build: Callable[[], dict[str, Any]]):
        super().__init__()
        self._build, self._lock = build, threading.Lock()

    def get(self, key: str, default: Any = None) -> Any:
        with self._lock:
            if self._build is not None:
                self.update(self._build())
                self._build = None
        return super().get(key, default)


class IncidentTracker:
    """The rollout's side of the incident: one method per lifecycle moment. It writes
    through the rollout's step journal, so a resumed run publishes nothing twice."""

    def __init__(self, journal: Journal, rollout: Rollout, notifier: Notifier, failure: Failure,
                 targets: list[str]):
        self.journal, self.rollout, self.notifier = journal, rollout, notifier
        self.failure, self.targets = failure, targets
        self.actions: list[dict[str, Any]] = []
        self.recovery: dict[str, Any] = {"for": format_duration(rollout.verify_recovery.for_)}
        self.status = "identified"

    # -- lifecycle ---------------------------------------------------------------------

    def record(self) -> None:
        """``investigating``: saved in the store at the decision, before any side effect."""
        if not self.journal.done("incident:recorded"):
            self.journal.store.save_incident(self._build("investigating", None, revision=0))
            self.journal.mark("incident:recorded")

    def identified(self) -> None:
        self._publish("notify:identified:0", "identified")

    def needs_person(self, key: str, reason: str) -> None:
        self._publish(f"notify:identified:{key}", "identified", note=reason, needs_person=True)

    def monitoring(self, actions: list[dict[str, Any]]) -> None:
        self.actions = list(actions)
        self._publish("notify:monitoring:0", "monitoring")

    def resolved(self, actions: list[dict[str, Any]], note: str) -> None:
        self.actions = list(actions)
        self._publish("notify:resolved:0", "resolved", note=note)

    # -- while verifying recovery (called by guardrail.rollout.recovery at every tick) ------------

    def relapsed(self, at: float, count: int, reasons: list[str]) -> None:
        self.recovery.update(relapses=count, clean_since=None)
        note = (f"The checks failed again at {iso(at)} while we were monitoring (relapse {count}): "
                + "; ".join(reasons[:3]) + ". Not resolved: recovery must hold for "
                + f"{self.recovery['for']} without interruption.")
        self._publish(f"notify:identified:relapse-{count}", "identified", note=note, at=at)

    def recovering(self, at: float, count: int) -> None:
        """The checks pass again after relapse ``count``: back to monitoring."""
        self.recovery["clean_since"] = iso(at)
        note = f"The checks pass again since {iso(at)} (after relapse {count}); watching them for {self.recovery['for']}."
        self._publish(f"notify:monitoring:relapse-{count}", "monitoring", note=note, at=at)

    def tick(self, at: float, clean_since: float | None, unclean: list[str]) -> None:
        """A periodic update when nothing was said for ``update_every``."""
        self.recovery["clean_since"] = iso(clean_since)
        every = self.rollout.on_failure.update_every
        if at - self._last_published(at) < every:
            return
        if clean_since is not None:
            note = (f"Still monitoring: the checks have passed for {format_duration(at - clean_since)} of the"
                    f" {self.recovery['for']} required.")
        else:
            note = ("Still failing after the rollback: " if self.status == "identified"
                    else "Still monitoring, not healthy yet: ") + "; ".join(unclean[:3]) + "."
        self._publish(f"notify:update:{int(at)}", self.status, note=note, at=at)

    # -- plumbing ------------------------------------------------------------------------

    def _build(self, status: str, note: str | None, *, revision: int, needs_person: bool = False,
               timeline: list[dict[str, Any]] | None = None, at: float | None = None) -> dict[str, Any]:
        journal = self.journal
        at = journal.now() if at is None else at
        steps = {s["key"]: s for s in journal.steps()}
        observed = {(f["region"], f["policy"], f["check"]): observed_values(journal.store, journal.id, f)
                    for f in self.failure.findings if f.get("check") != "deploy"}
        deployed = journal.started_regions([r for w in self.rollout.waves for r in w.regions])
        return build_incident(self.rollout, journal.id, self.failure, self.targets, steps=steps, deployed=deployed,
                              observed=observed, status=status, actions=self.actions, note=note, revision=revision,
                              needs_person=needs_person, timeline=timeline, recovery=dict(self.recovery), at=at,
                              people=on_record(journal.store, journal.id))

    def _notify_steps(self) -> list[dict[str, Any]]:
        return [s for s in self.journal.steps("notify:") if s["status"] == "done"]

    def _last_published(self, at: float) -> float:
        """When the last update at or before ``at`` went out (stored: replays agree)."""
        times = [(s["detail"] or {}).get("at", s["started_at"]) for s in self._notify_steps()]
        return max((t for t in times if t <= at + 1e-6), default=float("-inf"))

    def _publish(self, key: str, status: str, *, note: str | None = None, needs_person: bool = False,
                 at: float | None = None) -> None:
        journal = self.journal
        self.status = status
        if journal.done(key):
            return
        earlier = [s for s in self._notify_steps() if s["key"] != key]
        timeline = [{"at": iso((s["detail"] or {}).get("at")), "status": (s["detail"] or {}).get("status"),
                     "note": (s["detail"] or {}).get("note")} for s in earlier]
        at = journal.now() if at is None else at
        incident = self._build(status, note, revision=len(earlier) + 1, needs_person=needs_person, timeline=timeline,
                               at=at)
        detail = {"at": at, "status": status, "note": note, "revision": incident["revision"]}
        journal.begin(key, detail)
        sinks = self.notifier.queue(incident)
        journal.finish(key, True, {**detail, "sinks": sinks})
        journal.emit("incident." + status, incident=incident["id"], revision=incident["revision"], sinks=sinks,
                    **({"note": note} if note else {}))
        self.notifier.send(incident["id"])

"""Delivering incident updates: an outbox in the store, drained off the rollback's path.

Publishing an update writes one ``deliveries`` row per sink (``pending``) and returns:
the rollout never waits for PagerDuty. Background threads, one per (incident, sink)
*chain*, send the rows of their chain in order (an open before its updates, an update
before the resolve). A chain stops at a retryable failure and leaves the rest pending;
the next update, the next run of any rollout on the same state file, and
``guardrail incidents flush`` try again. A service that refuses a request (a 4xx other
than 408/429) marks that row ``rejected`` with the service's own words, and the chain
goes on. So a sink that hangs or fails costs its own thread's time, never the rollback's.

Delivery is at least once: a process killed between the service's answer and the
``delivered`` mark sends that update again on resume. Every sink is idempotent on the
incident's dedup key (Alertmanager labels, PagerDuty ``dedup_key``, Opsgenie alias) or
keeps its progress in its ``ref`` (GitHub issue number, Statuspage incident id). The
``ref`` a sink gets is a copy of what it returned last time (None the first time); what a
sink writes into it before raising half-way is kept for the retry.

Sinks for a spooled row are rebuilt from the plan of the row's rollout, with
``${env:...}`` resolved from the environment of the process that delivers it: secrets
are never stored, and a token fixed in the environment takes effect on the next flush.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any, Callable

from guardrail.clock import SystemClock
from guardrail.errors import GuardrailError
from guardrail.plugin.interfaces import PluginContext
from guardrail.language.model import PluginRef
from guardrail.plugin.manager import Registry
from guardrail.plugin.interfaces import SinkError
from guardrail.state.locks import HOST, process_alive
from guardrail.state.protocol import Store

DRAIN_GRACE = 10.0
"""Seconds a finishing rollout waits for deliveries in flight before leaving them spooled
(``on_failure.delivery_grace`` in a plan)."""

CLAIM_LEASE = 120.0
"""Seconds a chain stays claimed by the process delivering it, renewed before each row:
a process killed mid-chain on another host holds it no longer than this (on this host,
a claim whose process is gone is taken at once: ``claim_gone``)."""


def new_holder() -> str:
    """Who claims chains: this host and process, and one deliverer within it."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def claim_gone(holder: str) -> bool:
    """Whether a claim's holder (``new_holder``) was a process of this host that is gone:
    its claim is taken at once, not when it lapses. Another host's cannot be checked."""
    host, _, rest = holder.partition(":")
    pid = rest.split(":", 1)[0]
    return host == HOST and pid.isdigit() and not process_alive(int(pid))


@dataclass
class Result:
    """The outcome of one delivery attempt."""

    delivery_id: int
    incident_id: str
    sink: str
    status: str
    revision: int
    outcome: str  # delivered | pending (retry later) | rejected (the service refused it) | busy (another
    # process is delivering this chain)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.outcome == "delivered"

    def as_dict(self) -> dict[str, Any]:
        return {"delivery": self.delivery_id, "incident": self.incident_id, "sink": self.sink,
                "status": self.status, "revision": self.revision, "outcome": self.outcome, "error": self.error}


def sink_names(refs: list[PluginRef]) -> list[tuple[str, PluginRef]]:
    """A stable name per configured sink: the plugin name, ``slack#2`` for a second one."""
    seen: dict[str, int] = {}
    out = []
    for ref in refs:
        seen[ref.plugin] = seen.get(ref.plugin, 0) + 1
        out.append((ref.plugin if seen[ref.plugin] == 1 else f"{ref.plugin}#{seen[ref.plugin]}", ref))
    return out


def build_sinks(registry: Registry, refs: list[PluginRef], context: PluginContext) -> dict[str, Any]:
    sinks = {}
    for name, ref in sink_names(refs):
        sinks[name] = registry.build("incident_sinks", ref.plugin, ref.with_, context)
    return sinks


class SinkResolver:
    """Sink instances for an incident's rollout, built once from that rollout's plan."""

    def __init__(self, store: Store, registry: Registry, environ: dict[str, str] | None = None):
        self.store, self.registry, self.environ = store, registry, environ
        self._cache: dict[str, dict[str, Any] | Exception] = {}
        self._lock = threading.Lock()

    def seed(self, rollout_id: str, sinks: dict[str, Any]) -> None:
        """The running rollout's own sinks (with its clock and folder)."""
        self._cache[rollout_id] = sinks

    def sinks(self, rollout_id: str) -> dict[str, Any]:
        with self._lock:
            if rollout_id not in self._cache:
                try:
                    self._cache[rollout_id] = self._load(rollout_id)
                except Exception as exc:  # a moved plan, an unset variable: reported per delivery
                    self._cache[rollout_id] = exc
            found = self._cache[rollout_id]
        if isinstance(found, Exception):
            raise SinkError(f"cannot rebuild the sinks of rollout {rollout_id}: {found}", retryable=True)
        return found

    def _load(self, rollout_id: str) -> dict[str, Any]:
        from guardrail.language.loader import load_plan

        row = self.store.rollout(rollout_id)
        plan = load_plan(row["plan_path"], self.registry, environ=self.environ)
        self.store.redactor.add(plan.secrets)
        context = PluginContext(clock=SystemClock(), state_dir=self.store.state_dir, base_dir=plan.path.parent,
                                service=plan.rollout.service, redact=self.store.redactor.redact)
        from guardrail.incidents.notify import notify_sinks

        return {**build_sinks(self.registry, plan.rollout.on_failure.incident_refs(), context),
                **notify_sinks(self.registry, plan.rollout.notify, context)}


def deliver_one(store: Store, resolver: SinkResolver, row: dict[str, Any],
                stop: threading.Event) -> Result:
    """Send one outbox row to its sink and record what happened."""
    incident = row["payload"]
    result = Result(row["id"], row["incident_id"], row["sink"], incident["status"], incident.get("revision", 0),
                    "delivered")
    try:
        sink = resolver.sinks(incident["rollout_id"]).get(row["sink"])
        if sink is None:
            raise SinkError(f"the plan no longer has an incident sink named {row['sink']!r}", retryable=True)
        if isinstance(getattr(sink, "stop", None), threading.Event):  # IncidentSink.stop: declared there
            sink.stop = stop
        stored = store.sink_ref(row["incident_id"], row["sink"])
        ref = dict(stored) if stored is not None else None  # None: the first update this sink sees
        try:
            if incident.get("kind") == "notification":  # a rollout event (guardrail.incidents.notify)
                new_ref = _announce(sink, row["sink"], incident, ref)
            else:
                new_ref = sink.notify(incident, ref)
        except BaseException:
            if ref is not None and ref != stored:  # progress recorded in place before failing half-way
                store.set_sink_ref(row["incident_id"], row["sink"], ref)
            raise
        store.set_sink_ref(row["incident_id"], row["sink"], new_ref if new_ref is not None else ref)
    except SinkError as exc:
        result.outcome, result.error = ("pending" if exc.retryable else "rejected"), str(exc)
    except GuardrailError as exc:
        result.outcome, result.error = "pending", str(exc)
    except Exception as exc:  # a sink plugin's bug: keep the update, say what broke
        result.outcome, result.error = "pending", f"{type(exc).__name__}: {exc}"
    store.record_delivery(row["id"], result.outcome, result.error)
    result.error = store.redactor.redact(result.error)
    return result


def _announce(sink: Any, name: str, notification: dict[str, Any], ref: dict[str, Any] | None) -> Any:
    try:
        return sink.announce(notification, ref)
    except NotImplementedError:
        raise SinkError(f"{name} cannot send rollout notifications (its plugin has no announce)",
                        retryable=False) from None


def deliver_chain(store: Store, resolver: SinkResolver, incident_id: str, sink: str, *,
                  stop: threading.Event, on_result: Callable[[Result], None], holder: str) -> bool:
    """Send a chain's pending rows in order; False when it stopped at a retryable failure
    or another process is delivering the chain (reported as a ``busy`` result)."""
    busy = store.claim_chain(incident_id, sink, holder, CLAIM_LEASE, gone=claim_gone)
    if busy is not None:
        waiting = store.deliveries("pending", incident_id=incident_id, sink=sink)
        if waiting:
            on_result(_busy(waiting[0], busy))
        return False
    try:
        # Read after claiming: rows another process delivered before we held the chain are gone.
        for row in store.deliveries("pending", incident_id=incident_id, sink=sink):
            if stop.is_set():
                return False
            busy = store.claim_chain(incident_id, sink, holder, CLAIM_LEASE, gone=claim_gone)  # renew before each send
            if busy is not None:  # the claim lapsed and was taken over: leave the rest to its holder
                on_result(_busy(row, busy))
                return False
            result = deliver_one(store, resolver, row, stop)
            on_result(result)
            if result.outcome == "pending":
                return False
        return True
    finally:
        store.release_chain(incident_id, sink, holder)


def _busy(row: dict[str, Any], claim: dict[str, Any]) -> Result:
    incident = row["payload"]
    until = time.strftime("%H:%M:%S", time.localtime(claim["expires_at"]))
    return Result(row["id"], row["incident_id"], row["sink"], incident["status"], incident.get("revision", 0), "busy",
                  f"being delivered by {claim['holder']} (its claim runs until {until} unless renewed)")


def pending_chains(store: Store, incident_id: str | None = None) -> list[tuple[str, str]]:
    rows = store.deliveries("pending", incident_id=incident_id)
    return list(dict.fromkeys((r["incident_id"], r["sink"]) for r in rows))


class Deliverer:
    """Background delivery: a daemon thread per chain, started by ``kick``."""

    def __init__(self, store: Store, resolver: SinkResolver, on_result: Callable[[Result], None]):
        self.store, self.resolver, self.on_result = store, resolver, on_result
        self._threads: dict[tuple[str, str], tuple[threading.Thread, threading.Event]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._closed = False
        self._holder = new_holder()

    def kick(self, incident_id: str | None = None) -> None:
        """Deliver what is pending (for one incident, or everything in the store)."""
        with self._lock:
            if self._closed:
                return
            for chain in pending_chains(self.store, incident_id):
                running = self._threads.get(chain)
                if running is not None:
                    running[1].set()  # it re-reads its chain before it exits
                    continue
                wake = threading.Event()
                thread = threading.Thread(target=self._run, args=(chain, wake), daemon=True,
                                          name=f"guardrail-deliver-{chain[1]}")
                self._threads[chain] = (thread, wake)
                thread.start()

    def _run(self, chain: tuple[str, str], wake: threading.Event) -> None:
        while True:
            wake.clear()
            try:
                deliver_chain(self.store, self.resolver, *chain, stop=self._stop, on_result=self._report,
                              holder=self._holder)
            except Exception:  # the store closed under us at exit: the rows stay pending
                pass
            with self._lock:
                # New updates arrived during this pass: one more pass, which starts again
                # with the row that failed (if one did), so a service that recovered meanwhile
                # gets them all, in order. Nothing new: the chain rests until the next kick.
                if wake.is_set() and not self._stop.is_set():
                    continue
                del self._threads[chain]
                return

    def _report(self, result: Result) -> None:
        try:
            self.on_result(result)
        except Exception:  # an observer must never stop a delivery
            pass

    def close(self, grace: float | None = None) -> None:
        """Wait up to ``grace`` seconds for chains in flight, then stop them: what was not
        delivered stays pending in the store."""
        deadline = time.monotonic() + (DRAIN_GRACE if grace is None else grace)
        with self._lock:
            self._closed = True
        while True:
            with self._lock:
                threads = [t for t, _ in self._threads.values()]
            if not threads:
                break
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            threads[0].join(min(remaining, 0.5))
        self._stop.set()


def flush(store: Store, registry: Registry, *, incident: str | None = None, rejected: bool = False,
          environ: dict[str, str] | None = None) -> list[Result]:
    """Deliver the spool now, in this process: ``guardrail incidents flush``.

    :param incident: only this incident (or rollout) id.
    :param rejected: also retry deliveries a service refused (after fixing the plan or a token).
    :return: one result per attempt, in order.
    """
    incident_id = store.incident(incident)["id"] if incident else None
    if rejected:
        store.requeue_rejected(incident_id)
    resolver = SinkResolver(store, registry, environ)
    results: list[Result] = []
    holder = new_holder()
    for chain in pending_chains(store, incident_id):
        deliver_chain(store, resolver, *chain, stop=threading.Event(), on_result=results.append, holder=holder)
    return results

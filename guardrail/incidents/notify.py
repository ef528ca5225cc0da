"""Notifications: the plan's ``notify:`` sinks are told the rollout events they chose
(started, wave deployed, wave promoted, waiting for approval, halted, rolled back, done,
and a check's warning).

A notification travels like an incident update: one outbox row per sink in the store,
sent in order by the background deliverer, retried and spooled the same way
(``guardrail incidents flush``), so a slow or failing sink never delays a deploy or a
rollback. Its chain is ``NTF-<rollout id>``; its sinks are named ``notify:<plugin>``
(``notify:slack#2`` for a second one). A sink receives it through ``announce``; a sink
without it refuses the notification (``rejected``, with why).
"""

from __future__ import annotations

from typing import Any, Callable

from guardrail.language.model import PluginRef
from guardrail.plugin.interfaces import PluginContext
from guardrail.plugin.manager import Registry
from guardrail.state.protocol import Store
from guardrail.text import iso

PREFIX = "notify:"


def notification_chain(rollout_id: str) -> str:
    return f"NTF-{rollout_id}"


def notify_sinks(registry: Registry, refs: list[Any], context: PluginContext) -> dict[str, Any]:
    """The plan's notify sinks, named ``notify:<name>``."""
    from guardrail.incidents.delivery import build_sinks

    plain = [PluginRef.model_validate({"plugin": r.plugin, "with": r.with_}) for r in refs]
    return {PREFIX + name: sink for name, sink in build_sinks(registry, plain, context).items()}


def notify_names(refs: list[Any]) -> list[tuple[str, Any]]:
    from guardrail.incidents.delivery import sink_names

    return [(PREFIX + name, ref) for name, ref in sink_names(refs)]


def event_of(event: dict[str, Any]) -> tuple[str, str] | None:
    """(notification event, sentence) that a journal event means, or None."""
    kind = event["kind"]
    if kind == "rollout.started":
        waves = " → ".join(f"{w['name']} [{', '.join(w['regions'])}]" for w in event.get("waves") or [])
        return "started", f"started: {waves}"
    if kind == "state.baking" and not event.get("resumed"):
        return "wave_deployed", f"wave {event.get('wave')} deployed; baking for {event.get('bake')}"
    if kind == "wave.passed":
        return "wave_promoted", f"wave {event.get('wave')} passed its bake and is promoted"
    if kind == "state.halted":
        if event.get("waiting_for"):
            return "waiting_for_approval", f"wave {event['waiting_for']} waits for approval"
        return "halted", f"halted: {event.get('reason')}"
    if kind == "check.warned":
        return "warning", (f"warning in wave {event.get('wave')}: {event.get('region')}/{event.get('policy')}/"
                           f"{event.get('check')}: {event.get('reason')} (the wave goes on)")
    if kind == "state.rolled_back":
        return "rolled_back", f"rolled back {', '.join(event.get('regions') or [])}"
    if kind in ("state.promoted", "state.done", "state.rollback_failed"):
        outcome = {"state.promoted": "promoted", "state.done": "rolled back and recovered",
                   "state.rollback_failed": "rollback failed: a person is needed now"}[kind]
        return "done", f"done: {outcome}" + (f" ({event['reason']})" if event.get("reason") else "")
    return None


class Announcer:
    """Turns journal events into notifications queued for the sinks that chose them."""

    def __init__(self, store: Store, rollout: Any, rollout_id: str, kick: Callable[[str], None]):
        self.store, self.rollout, self.rollout_id, self.kick = store, rollout, rollout_id, kick
        self.wanted = {name: set(ref.events) for name, ref in notify_names(rollout.notify)}

    def on_event(self, event: dict[str, Any]) -> None:
        if not self.wanted or "seq" not in event:  # only stored events: each is announced once
            return
        found = event_of(event)
        if found is None:
            return
        name, sentence = found
        sinks = [sink for sink, events in self.wanted.items() if name in events]
        if not sinks:
            return
        doc = self.document(name, sentence, event)
        for sink in sinks:
            self.store.enqueue_delivery(doc, sink)
        self.kick(doc["id"])

    def document(self, name: str, sentence: str, event: dict[str, Any]) -> dict[str, Any]:
        r = self.rollout
        title = f"{r.service} {r.change.version}: {sentence}"
        return {
            "kind": "notification", "id": notification_chain(self.rollout_id), "rollout_id": self.rollout_id,
            "event": name, "status": name, "revision": event["seq"], "at": iso(event["at"]),
            "service": r.service, "change": r.change.model_dump(), "title": title, "text": sentence,
            "wave": event.get("wave") or event.get("waiting_for"),
            "regions": event.get("regions") or ([event["region"]] if event.get("region") else None),
            "reason": event.get("reason"),
            "see_more": f"guardrail status {self.rollout_id}",
        }

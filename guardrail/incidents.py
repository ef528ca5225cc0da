"""The one incident of a failed rollout, and its delivery to incident sinks.

Lifecycle, in the words status pages use: ``investigating`` (a policy failed) →
``identified`` (rollback started) → ``monitoring`` (rollback done, verifying
recovery) → ``resolved`` (recovery held for the whole window). A recurrence while
monitoring goes back to ``identified``. The dedup key (service + rollout id) makes
every update land on the same incident in every sink.

Delivery never delays a rollback: the engine calls ``Notifier.publish`` only after
the rollback steps, each sink failure is recorded in the spool (``deliveries``) for
a later retry, and nothing here raises.
"""

from __future__ import annotations

from typing import Any

from .interfaces import PluginContext
from .model import PluginRef
from .plugin_manager import Registry
from .store import SQLiteStore


def incident_id(rollout_id: str) -> str:
    return f"INC-{rollout_id}"


def dedup_key(service: str, rollout_id: str) -> str:
    return f"guardrail/{service}/{rollout_id}"


class Notifier:
    def __init__(self, store: SQLiteStore, registry: Registry, context: PluginContext, refs: list[PluginRef]):
        self.store, self.registry, self.context = store, registry, context
        self.refs = refs

    def _sink(self, ref: PluginRef) -> Any:
        factory = self.registry.get("incident_sinks", ref.plugin)
        model = getattr(factory, "Settings", None)
        settings = model.model_validate(ref.with_) if model is not None else ref.with_
        return factory(settings, self.context)

    def publish(self, incident: dict[str, Any]) -> list[dict[str, Any]]:
        """Save the incident and send it to every sink; returns one outcome per sink."""
        self.store.save_incident(incident)
        outcomes = []
        for ref in self.refs:
            name = ref.plugin
            try:
                sink = self._sink(ref)
                new_ref = sink.notify(self.store.redactor.redact(incident), self.store.sink_ref(incident["id"], name))
                self.store.set_sink_ref(incident["id"], name, new_ref)
                outcomes.append({"sink": name, "ok": True})
            except Exception as exc:  # a sink that is down is recorded and retried later, never fatal
                reason = self.store.redactor.redact(f"{type(exc).__name__}: {exc}")
                self.store.spool(incident, name, reason)
                outcomes.append({"sink": name, "ok": False, "error": reason})
        return outcomes

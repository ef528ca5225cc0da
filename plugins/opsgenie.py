"""``opsgenie`` incident sink: Opsgenie's Alert API v2.

The first update creates an alert whose ``alias`` is the incident's dedup key (a create
repeated after a crash is de-duplicated by Opsgenie on that alias); later updates are
notes on it, a change of priority (a person is needed: P1) is set on it, and the
resolve closes it, always addressed by alias (``identifierType=alias``). Authentication
is ``Authorization: GenieKey <key>``; EU accounts set ``url: https://api.eu.opsgenie.com``.
Field limits are Opsgenie's (message 130, description 15000, note 25000 characters).
"""

from __future__ import annotations

from typing import Literal
from urllib.parse import quote

from pydantic import Field

from guardrail import HttpSettings, HttpSink, clip, headline, hookimpl, plain_text, status_sentence

Priority = Literal["P1", "P2", "P3", "P4", "P5"]
PRIORITY = {"critical": "P1", "error": "P2", "warning": "P3", "info": "P5"}


class OpsgenieSink(HttpSink):
    class Settings(HttpSettings):
        api_key: str = Field(min_length=1, description="an API integration key: ${env:OPSGENIE_API_KEY}")
        url: str = Field("https://api.opsgenie.com", pattern=r"^https?://", description="the Opsgenie API (https://api.eu.opsgenie.com in the EU)")
        responders: list[dict[str, str]] = Field(default_factory=list,
                                                 description='e.g. [{type: team, name: mail-oncall}]')
        tags: list[str] = Field(default_factory=lambda: ["guardrail", "rollback"], max_length=20, description="tags of the alert")
        priority: dict[str, Priority] = Field(default_factory=dict,
                                              description="severity → priority, default critical P1, error P2")

    def notify(self, incident: dict, ref: dict | None) -> dict:
        ref = ref if ref is not None else {}
        base = self.settings.url.rstrip("/") + "/v2/alerts"
        alias = incident["dedup_key"][:512]
        target = f"{base}/{quote(alias, safe='')}"
        priority = {**PRIORITY, **self.settings.priority}.get(incident["severity"], "P3")
        by_alias = {"identifierType": "alias"}
        if not ref.get("created"):
            self.request("POST", base, json_body=self._alert(incident, alias, priority), headers=self._auth())
            ref.update(created=True, priority=priority)
        elif incident["status"] != "resolved":
            if ref.get("priority") != priority and incident.get("needs_person"):
                self.request("PUT", f"{target}/priority", json_body={"priority": priority}, headers=self._auth(),
                             params=by_alias)
                ref["priority"] = priority
            self.request("POST", f"{target}/notes", json_body=self._note(incident), headers=self._auth(),
                         params=by_alias)
        if incident["status"] == "resolved":
            self.request("POST", f"{target}/close", json_body=self._note(incident), headers=self._auth(),
                         params=by_alias)
            ref["closed"] = True
        return ref

    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"GenieKey {self.settings.api_key}"}

    def _alert(self, incident: dict, alias: str, priority: str) -> dict:
        alert = {
            "message": clip(headline(incident), 130),
            "alias": alias,
            "description": clip(plain_text(incident), 15000),
            "tags": [clip(t, 50) for t in self.settings.tags][:20],
            "details": {k: clip(str(v), 8000) for k, v in {
                "status": incident["status"], "service": incident["service"],
                "version": incident["change"]["version"], "previous": incident["change"]["previous"],
                "decision": incident["decision"], "rollout_id": incident["rollout_id"],
                "see_more": incident.get("see_more", ""),
            }.items()},
            "entity": clip(incident["service"], 512),
            "source": "guardrail",
            "priority": priority,
            "note": clip(status_sentence(incident), 25000),
        }
        if self.settings.responders:
            alert["responders"] = self.settings.responders
        return alert

    @staticmethod
    def _note(incident: dict) -> dict:
        text = f"[{incident['status']}] {status_sentence(incident)}\n\n{plain_text(incident)}"
        return {"user": "guardrail", "source": "guardrail", "note": clip(text, 25000)}


@hookimpl(trylast=True)
def guardrail_register_incident_sinks(register):
    register("opsgenie", OpsgenieSink)

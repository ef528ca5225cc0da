"""``statuspage`` incident sink: an Atlassian Statuspage incident, kept up to date.

The first update creates the incident (``POST /v1/pages/{page_id}/incidents``); later
ones ``PATCH`` its status (the same vocabulary: investigating, identified, monitoring,
resolved), its message and the status of the configured components (``component_status``
while open, ``operational`` once resolved). Authentication is
``Authorization: OAuth <api key>``.

A status page is public: the message says what customers need (affected service, what
is being done), never queries, thresholds or internal region names. Set
``technical: true`` for an internal page that should carry the whole incident.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from guardrail import HttpSettings, HttpSink, clip, hookimpl, plain_text, public_text

IMPACT = {"critical": "critical", "error": "major", "warning": "minor", "info": "minor"}


class StatuspageSink(HttpSink):
    class Settings(HttpSettings):
        page_id: str = Field(min_length=1, description="the Statuspage page the incident is posted on")
        api_key: str = Field(min_length=1, description="${env:STATUSPAGE_API_KEY}")
        url: str = Field("https://api.statuspage.io/v1", pattern=r"^https?://", description="the Statuspage API")
        components: list[str] = Field(default_factory=list, description="component ids affected while open")
        component_status: Literal["degraded_performance", "partial_outage", "major_outage"] = Field(
            "partial_outage", description="the status the components show until the incident is resolved")
        impact: Literal["none", "minor", "major", "critical"] | None = Field(
            None, description="impact_override; default from the incident's severity")
        name: str | None = Field(None, description='incident name; default "Degraded service: <service>"')
        deliver_notifications: bool = Field(True, description="let Statuspage notify the page's subscribers")
        technical: bool = Field(False, description="include checks and queries (internal pages only)")

    def notify(self, incident: dict, ref: dict | None) -> dict:
        ref = ref if ref is not None else {}
        pages = f"{self.settings.url.rstrip('/')}/pages/{self.settings.page_id}/incidents"
        resolved = incident["status"] == "resolved"
        body = {"status": incident["status"],
                "body": clip(plain_text(incident) if self.settings.technical else public_text(incident), 25000),
                "deliver_notifications": self.settings.deliver_notifications}
        if self.settings.components:
            state = "operational" if resolved else self.settings.component_status
            body["component_ids"] = list(self.settings.components)
            body["components"] = {c: state for c in self.settings.components}
        if not resolved:  # a person needed raises the impact; a resolve keeps the last one
            body["impact_override"] = self.settings.impact or IMPACT.get(incident["severity"], "minor")
        if not ref.get("id"):
            body["name"] = clip(self.settings.name or f"Degraded service: {incident['service']}", 255)
            created = self.request("POST", pages, json_body={"incident": body}, headers=self._auth()).json()
            ref.update(id=created["id"], shortlink=created.get("shortlink"))
        else:
            self.request("PATCH", f"{pages}/{ref['id']}", json_body={"incident": body}, headers=self._auth())
        ref["status"] = incident["status"]
        return ref

    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"OAuth {self.settings.api_key}"}


@hookimpl(trylast=True)
def guardrail_register_incident_sinks(register):
    register("statuspage", StatuspageSink)

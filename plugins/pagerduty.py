"""``pagerduty`` incident sink: PagerDuty Events API v2 (``POST /v2/enqueue``).

``identified`` (and every update while open) is a ``trigger``, ``resolved`` a
``resolve``, all with the incident's ``dedup_key`` so they land on one alert.
``monitoring`` is an ``acknowledge`` only when ``acknowledge_when_monitoring`` is set:
PagerDuty sends no notification for triggers on an acknowledged alert, so acknowledging
for people would silence the page of a relapse (the OpenSRS seed). Off by default.

Severity: PagerDuty's enum (critical, error, warning, info) is the incident's own
(``critical`` when a person is needed, ``error`` while identified, ``warning`` while
monitoring); ``severity`` remaps it. The summary is cut to PagerDuty's 1024 characters.
The routing key travels in the body, as the API requires, and nowhere else.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from guardrail import HttpSettings, HttpSink, action_line, check_line, clip, headline, hookimpl, status_sentence

Severity = Literal["critical", "error", "warning", "info"]
SUMMARY_LIMIT = 1024
DEDUP_LIMIT = 255


class PagerDutySink(HttpSink):
    class Settings(HttpSettings):
        routing_key: str = Field(min_length=32, max_length=32,
                                 description="the 32-character integration key: ${env:PAGERDUTY_ROUTING_KEY}")
        url: str = Field("https://events.pagerduty.com/v2/enqueue", pattern=r"^https?://", description="the Events API v2 endpoint")
        source: str | None = Field(None, description="payload.source; default: guardrail/<service>")
        severity: dict[Severity, Severity] = Field(default_factory=dict,
                                                   description="remap severities, e.g. {error: critical}")
        acknowledge_when_monitoring: bool = Field(False, description="acknowledge the PagerDuty incident while recovery is being verified")
        client_url: str | None = Field(None, description="a link shown in PagerDuty (your CI run, a dashboard)")

    def notify(self, incident: dict, ref: dict | None) -> dict:
        status = incident["status"]
        action = "resolve" if status == "resolved" else "acknowledge" if (
            status == "monitoring" and self.settings.acknowledge_when_monitoring and not incident.get("needs_person")
        ) else "trigger"
        event: dict = {"routing_key": self.settings.routing_key, "event_action": action,
                       "dedup_key": incident["dedup_key"][:DEDUP_LIMIT]}
        if action == "trigger":
            event["payload"] = self._payload(incident)
            event["client"] = "guardrail"
            if self.settings.client_url:
                event["client_url"] = self.settings.client_url
                event["links"] = [{"href": self.settings.client_url, "text": "guardrail rollout"}]
        response = self.request("POST", self.settings.url, json_body=event)
        try:
            dedup = response.json().get("dedup_key") or event["dedup_key"]
        except ValueError:
            dedup = event["dedup_key"]
        return {"dedup_key": dedup, "last_action": action}

    def _payload(self, incident: dict) -> dict:
        severity = self.settings.severity.get(incident["severity"], incident["severity"])
        payload = {
            "summary": clip(f"{headline(incident)}: {status_sentence(incident)}", SUMMARY_LIMIT),
            "source": self.settings.source or f"guardrail/{incident['service']}",
            "severity": severity,
            "component": incident["service"],
            "group": ",".join(incident.get("rolled_back") or []) or incident["service"],
            "class": "staged rollout failure",
            "custom_details": {
                "status": incident["status"],
                "change": incident["change"],
                "decision": incident["decision"],
                "failing_checks": [check_line(f) + (f" | query: {f['query']}" if f.get("query") else "")
                                   for f in incident.get("failing_checks") or []],
                "regions": {r["region"]: r["state"] for r in incident.get("regions") or []},
                "actions": [action_line(a) for a in incident.get("actions") or []],
                "see_more": incident.get("commands") or incident.get("see_more"),
            },
        }
        if incident.get("clock") != "virtual" and incident.get("at"):
            payload["timestamp"] = incident["at"]  # a simulated rollout's time is not PagerDuty's business
        return payload


@hookimpl(trylast=True)
def guardrail_register_incident_sinks(register):
    register("pagerduty", PagerDutySink)

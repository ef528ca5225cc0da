"""``alertmanager`` incident sink: one alert per failed rollout, through Alertmanager's API v2.

Every update re-posts the same alert (same labels) to ``POST /api/v2/alerts`` with
fresh annotations; the resolve re-posts it with ``endsAt`` now and the *original*
``startsAt`` (Alertmanager answers 400 to an ``endsAt`` before ``startsAt``). Labels
never carry the status, or each status would be a different alert that never resolves.

Times are the wall clock, always: Alertmanager judges ``startsAt``/``endsAt`` against its
own clock, so a virtual-clock rollout (a simulation that runs hours in a second) must
not send its simulated times, or its alert would "end" hours in the future. The
incident's own (virtual) times are in the annotations. A firing alert carries an
``endsAt`` ``expire_after`` ahead (a guardrail that dies never leaves an alert that
Alertmanager times out after 5 minutes); each update pushes it forward.
"""

from __future__ import annotations

import time

from pydantic import Field

from guardrail import (Duration, HttpSettings, HttpSink, check_line, clip, headline, hookimpl, plain_text,
                       status_sentence)

DESCRIPTION_LIMIT = 8000


class AlertmanagerSink(HttpSink):
    class Settings(HttpSettings):
        url: str = Field(pattern=r"^https?://", description="Alertmanager base URL, e.g. http://alertmanager:9093")
        headers: dict[str, str] = Field(default_factory=dict, description="e.g. Authorization: Basic ${env:AM_AUTH}")
        alertname: str = Field("GuardrailRolloutFailed", description="the alertname label of the alert")
        labels: dict[str, str] = Field(default_factory=lambda: {"severity": "critical"},
                                       description="extra labels for routing (team, severity...)")
        expire_after: Duration = Field(86400.0, gt=0, description="a firing alert ends by itself after this long"
                                                                  " without an update")
        generator_url: str | None = Field(None, description="link shown in notifications (your CI run, a runbook)")

    def notify(self, incident: dict, ref: dict | None) -> dict:
        ref = ref if ref is not None else {}
        labels = ref.get("labels") or {**self.settings.labels, "alertname": self.settings.alertname,
                                        "service": incident["service"], "rollout_id": incident["rollout_id"],
                                        "source": "guardrail"}
        now = time.time()
        started = ref.get("started", now)
        starts_at = ref.get("startsAt") or _iso_ms(started)
        resolved = incident["status"] == "resolved"
        ends = max(now, started + 0.001) if resolved else now + self.settings.expire_after
        alert = {"labels": labels, "annotations": self._annotations(incident), "startsAt": starts_at,
                 "endsAt": _iso_ms(ends)}
        if self.settings.generator_url:
            alert["generatorURL"] = self.settings.generator_url
        self.request("POST", self.settings.url.rstrip("/") + "/api/v2/alerts", json_body=[alert],
                     headers=self.settings.headers)
        return {"labels": labels, "startsAt": starts_at, "started": started, "resolved": resolved}

    @staticmethod
    def _annotations(incident: dict) -> dict[str, str]:
        checks = "; ".join(check_line(f) for f in incident.get("failing_checks") or [])
        out = {
            "summary": clip(headline(incident), 500),
            "description": clip(plain_text(incident), DESCRIPTION_LIMIT),
            "status": incident["status"],
            "status_detail": clip(status_sentence(incident), 1000),
            "incident_id": incident["id"],
            "dedup_key": incident["dedup_key"],
            "version": incident["change"]["version"],
            "previous": incident["change"]["previous"],
            "decision": clip(incident["decision"], 1000),
            "failing_checks": clip(checks, 2000),
            "regions": ", ".join(f"{r['region']}: {r['state']}" for r in incident.get("regions") or []),
            "see_more": incident.get("see_more", ""),
            "incident_time": incident.get("at") or "",
            "rollout_clock": incident.get("clock", "real"),
        }
        if incident["change"].get("ticket"):
            out["ticket"] = incident["change"]["ticket"]
        return {k: v for k, v in out.items() if v}


def _iso_ms(epoch: float) -> str:
    """RFC 3339 with milliseconds: a resolve posted within the second of its start stays after it."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(epoch)) + f".{int(epoch * 1000) % 1000:03d}Z"


@hookimpl(trylast=True)
def guardrail_register_incident_sinks(register):
    register("alertmanager", AlertmanagerSink)

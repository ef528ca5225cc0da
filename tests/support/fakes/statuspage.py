"""Atlassian Statuspage's REST API v1 for incidents, as documented (developer.statuspage.io:
"Create an incident", "Update an incident"; authentication "Authorization: OAuth <key>").

Validated: the OAuth header (else 401); the page id; create (``POST
/v1/pages/{page}/incidents``) and update (``PATCH .../incidents/{id}``) bodies wrapped in
``{"incident": {...}}`` with only documented fields: ``name`` (required to create),
``status`` (investigating, identified, monitoring, resolved, scheduled, in_progress,
verifying, completed), ``impact_override`` (none, minor, major, critical,
maintenance), ``body``, ``deliver_notifications`` (boolean), ``component_ids`` (known
components) and ``components`` (known id → operational, under_maintenance,
degraded_performance, partial_outage, major_outage).

Answers: 201 / 200 with the incident; 422 ``{"error": ...}`` naming the invalid value;
404 for an unknown page or incident.
"""

from __future__ import annotations

import uuid

from .base import FakeService, Reply, Request, check, only_keys

STATUSES = ("investigating", "identified", "monitoring", "resolved", "scheduled", "in_progress", "verifying",
            "completed")
IMPACTS = ("none", "minor", "major", "critical", "maintenance")
COMPONENT_STATUSES = ("operational", "under_maintenance", "degraded_performance", "partial_outage", "major_outage")
FIELDS = {"name", "status", "impact_override", "body", "deliver_notifications", "component_ids", "components",
          "metadata", "auto_tweet_at_beginning", "auto_tweet_on_completion", "auto_tweet_on_creation",
          "auto_tweet_one_hour_before", "backfill_date", "backfilled", "scheduled_for", "scheduled_until",
          "scheduled_remind_prior", "scheduled_auto_in_progress", "scheduled_auto_completed", "auto_transition_to_maintenance_state",
          "auto_transition_to_operational_state", "auto_transition_deliver_notifications_at_start",
          "auto_transition_deliver_notifications_at_end", "reminder_intervals"}


def unprocessable(message: str) -> Reply:
    return Reply(422, {"error": message})


class FakeStatuspage(FakeService):
    name = "statuspage"

    def __init__(self, api_key: str, page_id: str = "pg1234abcd", components: tuple[str, ...] = ("cmp-smtp", "cmp-api")):
        self.api_key, self.page_id = api_key, page_id
        self.components = {c: "operational" for c in components}
        self.incidents: dict[str, dict] = {}
        super().__init__()

    def handle(self, request: Request) -> Reply:
        check(request.headers.get("authorization") == f"OAuth {self.api_key}",
              Reply(401, {"error": "Could not authenticate"}), "wrong or missing OAuth key")
        prefix = f"/v1/pages/{self.page_id}/incidents"
        if not request.path.startswith(prefix):
            return Reply(404, {"error": "Not found"})
        rest = request.path[len(prefix):].strip("/")
        body = self.json_object(request, Reply(400, {"error": "Bad request: the body is not JSON"}))
        only_keys(body, {"incident"}, unprocessable("the body is {\"incident\": {...}}"))
        incident = body.get("incident")
        check(isinstance(incident, dict), unprocessable("incident is required"), "no incident object")
        self._validate(incident, creating=not rest)
        if not rest and request.method == "POST":
            record = {"id": uuid.uuid4().hex[:12], "name": incident["name"], "status": incident.get("status",
                      "investigating"), "impact": incident.get("impact_override", "none"), "incident_updates": [],
                      "shortlink": "https://stspg.io/x"}
            self.incidents[record["id"]] = record
        elif rest in self.incidents and request.method == "PATCH":
            record = self.incidents[rest]
            check(record["status"] != "resolved" or incident.get("status") == "resolved",
                  unprocessable("a resolved incident cannot change status"), "update after resolve")
            record["status"] = incident.get("status", record["status"])
            record["impact"] = incident.get("impact_override", record["impact"])
        else:
            return Reply(404, {"error": "Not found"})
        record["incident_updates"].append({"status": record["status"], "body": incident.get("body")})
        self.components.update(incident.get("components") or {})
        return Reply(201 if request.method == "POST" else 200, record)

    def _validate(self, incident: dict, *, creating: bool) -> None:
        only_keys(incident, FIELDS, unprocessable("unknown incident field"))
        if creating:
            check(isinstance(incident.get("name"), str) and incident["name"].strip() != "",
                  unprocessable("Name can't be blank"), "name missing")
        if "status" in incident:
            check(incident["status"] in STATUSES, unprocessable("Status is not included in the list"),
                  f"status {incident['status']!r}")
        if "impact_override" in incident:
            check(incident["impact_override"] in IMPACTS, unprocessable("Impact override is not included in the list"),
                  f"impact_override {incident['impact_override']!r}")
        if "body" in incident:
            check(isinstance(incident["body"], str), unprocessable("Body must be a string"), "body not a string")
        if "deliver_notifications" in incident:
            check(isinstance(incident["deliver_notifications"], bool),
                  unprocessable("deliver_notifications must be a boolean"), "deliver_notifications")
        for cid in incident.get("component_ids") or []:
            check(cid in self.components, unprocessable(f"Component {cid} not found"), f"unknown component {cid}")
        for cid, state in (incident.get("components") or {}).items():
            check(cid in self.components, unprocessable(f"Component {cid} not found"), f"unknown component {cid}")
            check(state in COMPONENT_STATUSES, unprocessable("Component status is not included in the list"),
                  f"component status {state!r}")

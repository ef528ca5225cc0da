"""PagerDuty Events API v2 (``POST /v2/enqueue``), as documented in PagerDuty's
developer docs ("Send an Alert Event"; "Response Codes & Retry Logic").

Validated: JSON object; ``routing_key`` a 32-character string; ``event_action`` one of
trigger/acknowledge/resolve; ``dedup_key`` at most 255 characters (required to
acknowledge or resolve); a trigger's ``payload`` with ``summary`` (1-1024 characters),
``source`` and ``severity`` (critical, error, warning, info), optional ``timestamp``,
``component``, ``group``, ``class``, ``custom_details`` (object); ``links`` of
``{href, text}``. Unknown fields are refused (guardrail must not invent fields).

Answers: 202 ``{"status": "success", "message": "Event processed", "dedup_key": ...}``;
400 ``{"status": "invalid event", "message": "Event object is invalid", "errors": [...]}``;
``RATE_LIMITED`` is the 429 a throttled integration gets.
"""

from __future__ import annotations

from datetime import datetime

from .base import FakeService, Invalid, Reply, Request, check, only_keys, string

RATE_LIMITED = (429, {"status": "throttle event", "message": "Requests for this service are arriving too quickly."
                      " Please retry later."})
ACTIONS = ("trigger", "acknowledge", "resolve")
SEVERITIES = ("critical", "error", "warning", "info")


class FakePagerDuty(FakeService):
    name = "pagerduty"

    def __init__(self, routing_key: str):
        self.routing_key = routing_key
        self.alerts: dict[str, dict] = {}  # dedup_key -> {"state": ..., "events": [...]}
        super().__init__()

    @property
    def enqueue_url(self) -> str:
        return self.url + "/v2/enqueue"

    def handle(self, request: Request) -> Reply:
        if request.method != "POST" or request.path != "/v2/enqueue":
            return Reply(404, {"status": "not found"})
        body = self.json_object(request, self._invalid("Event object is not valid JSON"))
        errors = self._errors(body)
        if errors:
            raise Invalid(self._invalid(*errors), "; ".join(errors))
        check(body["routing_key"] == self.routing_key, self._invalid("Invalid routing key"), "unknown routing key")
        key = body.get("dedup_key") or f"generated-{len(self.requests)}"
        alert = self.alerts.get(key)
        action = body["event_action"]
        if action == "trigger":
            if alert is None or alert["state"] == "resolved":
                alert = self.alerts[key] = {"state": "triggered", "events": []}
            elif alert["state"] == "acknowledged":
                pass  # PagerDuty: no new notification while acknowledged
            alert["events"].append(body)
        elif alert is not None and alert["state"] != "resolved":  # ack/resolve of nothing open are dropped
            alert["state"] = "acknowledged" if action == "acknowledge" else "resolved"
            alert["events"].append(body)
        return Reply(202, {"status": "success", "message": "Event processed", "dedup_key": key})

    @staticmethod
    def _invalid(*errors: str) -> Reply:
        return Reply(400, {"status": "invalid event", "message": "Event object is invalid", "errors": list(errors)})

    def _errors(self, body: dict) -> list[str]:
        errors = []
        unknown = sorted(set(body) - {"routing_key", "event_action", "dedup_key", "payload", "images", "links",
                                      "client", "client_url"})
        if unknown:
            errors.append(f"Unknown field(s): {', '.join(unknown)}")
        key = body.get("routing_key")
        if not isinstance(key, str) or len(key) != 32:
            errors.append("Length of 'routing_key' is incorrect (should be 32 characters)")
        action = body.get("event_action")
        if action not in ACTIONS:
            errors.append("'event_action' is invalid (must be one of trigger, acknowledge or resolve)")
        dedup = body.get("dedup_key")
        if dedup is not None and (not isinstance(dedup, str) or len(dedup) > 255):
            errors.append("'dedup_key' must be a string of at most 255 characters")
        if action in ("acknowledge", "resolve") and not dedup:
            errors.append("'dedup_key' is required to acknowledge or resolve")
        if action == "trigger":
            errors += self._payload_errors(body.get("payload"))
        for link in body.get("links") or []:
            if not isinstance(link, dict) or not isinstance(link.get("href"), str) or set(link) - {"href", "text"}:
                errors.append("'links' entries are {href, text}")
        return errors

    @staticmethod
    def _payload_errors(payload) -> list[str]:
        if not isinstance(payload, dict):
            return ["'payload' is missing or not an object"]
        errors = []
        reply = Reply(400)
        try:
            only_keys(payload, {"summary", "source", "severity", "timestamp", "component", "group", "class",
                                "custom_details"}, reply, "payload")
            string(payload, "summary", reply, required=True, max_length=1024)
            string(payload, "source", reply, required=True)
            string(payload, "severity", reply, required=True, choices=SEVERITIES)
            for key in ("component", "group", "class", "timestamp"):
                string(payload, key, reply)
            if payload.get("timestamp"):
                datetime.fromisoformat(payload["timestamp"].replace("Z", "+00:00"))
            check(isinstance(payload.get("custom_details", {}), dict), reply, "custom_details must be an object")
        except Invalid as exc:
            errors.append(f"payload: {exc.why}")
        except ValueError:
            errors.append("payload.timestamp is not ISO 8601")
        return errors

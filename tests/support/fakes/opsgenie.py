"""Opsgenie Alert API v2, as documented ("Alert API": Create Alert, Add Note, Close
Alert, Update Alert Priority).

Validated: ``Authorization: GenieKey <key>``; create (``POST /v2/alerts``) with a
non-empty ``message`` of at most 130 characters, ``alias`` ≤ 512, ``description`` ≤
15000, ``tags`` ≤ 20 of ≤ 50 characters, ``details`` a map of strings, ``entity`` ≤ 512,
``source`` ≤ 100, ``priority`` P1-P5, ``user`` ≤ 100, ``note`` ≤ 25000, ``responders``
objects typed team/user/escalation/schedule, and no other field; notes and close
(``POST /v2/alerts/{identifier}/notes|close``) and priority
(``PUT /v2/alerts/{identifier}/priority``) with ``identifierType`` id, alias or tiny.

Answers: 202 ``{"result": "Request will be processed", "took": ..., "requestId": ...}``;
422 ``{"message": "Request body is not processable. Please check the errors.",
"errors": {...}}``; 401 for a wrong key. Alerts live in ``alerts`` by alias.
"""

from __future__ import annotations

import uuid
from urllib.parse import unquote

from .base import FakeService, Invalid, Reply, Request, check, only_keys, string

CREATE_FIELDS = {"message", "alias", "description", "responders", "visibleTo", "actions", "tags", "details", "entity",
                 "source", "priority", "user", "note"}
ACTION_FIELDS = {"user", "source", "note"}


def unprocessable(field: str, message: str) -> Reply:
    return Reply(422, {"message": "Request body is not processable. Please check the errors.",
                       "errors": {field: message}, "took": 0.001, "requestId": str(uuid.uuid4())})


class FakeOpsgenie(FakeService):
    name = "opsgenie"

    def __init__(self, api_key: str):
        self.api_key = api_key
        self.alerts: dict[str, dict] = {}
        super().__init__()

    def _accepted(self) -> Reply:
        return Reply(202, {"result": "Request will be processed", "took": 0.01, "requestId": str(uuid.uuid4())})

    def handle(self, request: Request) -> Reply:
        if request.headers.get("authorization") != f"GenieKey {self.api_key}":
            raise Invalid(Reply(401, {"message": "Could not authenticate", "took": 0.0,
                                      "requestId": str(uuid.uuid4())}), "wrong or missing GenieKey")
        parts = request.path.strip("/").split("/")
        if parts[:2] != ["v2", "alerts"]:
            return Reply(404, {"message": "Not found"})
        if len(parts) == 2 and request.method == "POST":
            return self._create(request)
        if len(parts) == 4 and parts[3] in ("notes", "close", "priority"):
            identifier = unquote(parts[2])
            kind = request.query.get("identifierType", "id")
            check(kind in ("id", "alias", "tiny"), unprocessable("identifierType", "must be id, alias or tiny"),
                  f"identifierType {kind!r}")
            alert = self.alerts.get(identifier) if kind == "alias" else None
            check(alert is not None and alert["status"] == "open",
                  Reply(404, {"message": f"Alert with alias [{identifier}] does not exist", "took": 0.0}),
                  f"no open alert with {kind} {identifier!r}")
            body = self.json_object(request, unprocessable("body", "Request body is not valid JSON"))
            if parts[3] == "priority":
                check(request.method == "PUT", Reply(405, {"message": "Method not allowed"}), "priority is a PUT")
                only_keys(body, {"priority"}, unprocessable("priority", "unknown field"))
                string(body, "priority", unprocessable("priority", "Priority should be one of [P1, P2, P3, P4, P5]"),
                       required=True, choices=("P1", "P2", "P3", "P4", "P5"))
                alert["priority"] = body["priority"]
                return self._accepted()
            check(request.method == "POST", Reply(405, {"message": "Method not allowed"}), "notes/close are POSTs")
            self._action_body(body, note_required=parts[3] == "notes")
            alert["notes"].append(body.get("note"))
            if parts[3] == "close":
                alert["status"] = "closed"
            return self._accepted()
        return Reply(404, {"message": "Not found"})

    def _create(self, request: Request) -> Reply:
        body = self.json_object(request, unprocessable("body", "Request body is not valid JSON"))
        only_keys(body, CREATE_FIELDS, unprocessable("body", "unknown field"))
        string(body, "message", unprocessable("message", "Message can not be empty."), required=True)
        for key, limit in (("message", 130), ("alias", 512), ("description", 15000), ("entity", 512),
                           ("source", 100), ("user", 100), ("note", 25000)):
            string(body, key, unprocessable(key, f"{key} can not be longer than {limit} characters"), max_length=limit)
        string(body, "priority", unprocessable("priority", "Priority should be one of [P1, P2, P3, P4, P5]"),
               choices=("P1", "P2", "P3", "P4", "P5"))
        tags = body.get("tags", [])
        check(isinstance(tags, list) and len(tags) <= 20 and all(isinstance(t, str) and len(t) <= 50 for t in tags),
              unprocessable("tags", "at most 20 tags of at most 50 characters"), "tags out of limits")
        details = body.get("details", {})
        check(isinstance(details, dict) and all(isinstance(v, str) for v in details.values()),
              unprocessable("details", "details must be a map of strings"), "details must map strings to strings")
        for responder in body.get("responders", []):
            check(isinstance(responder, dict) and responder.get("type") in ("team", "user", "escalation", "schedule"),
                  unprocessable("responders", "responder type must be team, user, escalation or schedule"),
                  "bad responder")
        alias = body.get("alias") or str(uuid.uuid4())
        existing = self.alerts.get(alias)
        if existing is not None and existing["status"] == "open":
            existing["count"] += 1  # de-duplicated on the alias
        else:
            self.alerts[alias] = {"status": "open", "count": 1, "create": body, "notes": [],
                                  "priority": body.get("priority", "P3")}
        return self._accepted()

    @staticmethod
    def _action_body(body: dict, *, note_required: bool) -> None:
        only_keys(body, ACTION_FIELDS, unprocessable("body", "unknown field"))
        string(body, "note", unprocessable("note", "Note can not be empty."), required=note_required, max_length=25000)
        string(body, "user", unprocessable("user", "user can not be longer than 100 characters"), max_length=100)
        string(body, "source", unprocessable("source", "source can not be longer than 100 characters"), max_length=100)

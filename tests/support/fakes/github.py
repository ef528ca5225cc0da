"""GitHub's REST API for issues, as documented ("REST API endpoints for issues" and
"for issue comments"; "Rate limits for the REST API"; "Troubleshooting the REST API").

Validated: ``Authorization: Bearer <token>`` (else 401 ``Bad credentials``); a
``User-Agent`` (else 403, as GitHub does); create (``POST /repos/{o}/{r}/issues``) with
a ``title`` and only documented fields, ``body`` ≤ 65536 characters, ``labels`` and
``assignees`` lists of strings; comment (``POST .../issues/{n}/comments``) with a
``body``; update (``PATCH .../issues/{n}``) with ``state`` open/closed and
``state_reason`` completed/not_planned/reopened; list (``GET .../issues``).

Answers: 201 issue/comment objects, 200 for PATCH and GET; 422 ``Validation Failed``
with ``errors``; 404 ``Not Found``; every answer carries ``x-ratelimit-*`` headers, and
``rate_limit(reset_in)`` scripts the primary rate-limit 403 (``x-ratelimit-remaining: 0``,
``x-ratelimit-reset`` in epoch seconds).
"""

from __future__ import annotations

import time

from .base import FakeService, Invalid, Reply, Request, check, only_keys

DOCS = "https://docs.github.com/rest"
ISSUE_FIELDS = {"title", "body", "assignee", "milestone", "labels", "assignees", "type"}
UPDATE_FIELDS = ISSUE_FIELDS | {"state", "state_reason"}


def validation_failed(field: str, code: str = "missing_field") -> Reply:
    return Reply(422, {"message": "Validation Failed", "errors": [{"resource": "Issue", "code": code, "field": field}],
                       "documentation_url": DOCS})


class FakeGitHub(FakeService):
    name = "github"

    def __init__(self, token: str, repository: str = "acme/mail"):
        self.token, self.repository = token, repository
        self.issues: dict[int, dict] = {}
        self.comments: dict[int, list[str]] = {}
        super().__init__()

    def rate_limit(self, reset_in: float, times: int = 1) -> int:
        """The next requests get GitHub's primary rate-limit answer; returns the reset
        (epoch seconds, as ``x-ratelimit-reset`` says it)."""
        reset = int(time.time() + reset_in + 0.999)
        self.fail_next(403, {"message": "API rate limit exceeded for user ID 1.", "documentation_url": DOCS},
                       {"x-ratelimit-limit": "5000", "x-ratelimit-remaining": "0", "x-ratelimit-used": "5000",
                        "x-ratelimit-reset": str(reset), "x-ratelimit-resource": "core"}, times=times)
        return reset

    def _headers(self) -> dict[str, str]:
        return {"x-ratelimit-limit": "5000", "x-ratelimit-remaining": "4999", "x-ratelimit-used": "1",
                "x-ratelimit-reset": str(int(time.time()) + 3600), "x-ratelimit-resource": "core"}

    def handle(self, request: Request) -> Reply:
        auth = request.headers.get("authorization", "")
        check(auth in (f"Bearer {self.token}", f"token {self.token}"),
              Reply(401, {"message": "Bad credentials", "documentation_url": DOCS, "status": "401"}),
              "wrong or missing token")
        check(bool(request.headers.get("user-agent")),
              Reply(403, "Request forbidden by administrative rules. Please make sure your request has a User-Agent"
                         " header."), "no User-Agent")
        prefix = f"/repos/{self.repository}/issues"
        if not request.path.startswith(prefix):
            return Reply(404, {"message": "Not Found", "documentation_url": DOCS})
        rest = request.path[len(prefix):].strip("/").split("/") if request.path != prefix else []
        reply = self._route(request, rest)
        reply.headers = {**self._headers(), **reply.headers}
        return reply

    def _route(self, request: Request, rest: list[str]) -> Reply:
        if not rest and request.method == "GET":
            wanted = set(filter(None, request.query.get("labels", "").split(",")))
            found = [i for i in sorted(self.issues.values(), key=lambda i: -i["number"])
                     if wanted <= {label["name"] for label in i["labels"]}]
            return Reply(200, found)
        if not rest and request.method == "POST":
            body = self.json_object(request, Reply(400, {"message": "Problems parsing JSON", "documentation_url": DOCS}))
            only_keys(body, ISSUE_FIELDS, validation_failed("body", "invalid"))
            check(isinstance(body.get("title"), (str, int)) and str(body.get("title")).strip() != "",
                  validation_failed("title"), "title missing")
            self._common(body)
            number = len(self.issues) + 1
            self.issues[number] = {"number": number, "id": 1000 + number, "title": str(body["title"]),
                                   "body": body.get("body"), "state": "open", "state_reason": None,
                                   "labels": [{"name": n} for n in body.get("labels", [])],
                                   "html_url": f"https://github.com/{self.repository}/issues/{number}"}
            self.comments[number] = []
            return Reply(201, self.issues[number])
        if not rest[0].isdigit() or int(rest[0]) not in self.issues:
            return Reply(404, {"message": "Not Found", "documentation_url": DOCS})
        issue = self.issues[int(rest[0])]
        if rest[1:] == ["comments"] and request.method == "POST":
            body = self.json_object(request, Reply(400, {"message": "Problems parsing JSON"}))
            only_keys(body, {"body"}, validation_failed("body", "invalid"))
            check(isinstance(body.get("body"), str) and body["body"] != "", validation_failed("body"), "body missing")
            check(len(body["body"]) <= 65536, validation_failed("body", "too_long"), "comment too long")
            self.comments[issue["number"]].append(body["body"])
            return Reply(201, {"id": len(self.comments[issue["number"]]), "body": body["body"],
                               "html_url": issue["html_url"] + "#issuecomment"})
        if not rest[1:] and request.method == "PATCH":
            body = self.json_object(request, Reply(400, {"message": "Problems parsing JSON"}))
            only_keys(body, UPDATE_FIELDS, validation_failed("body", "invalid"))
            self._common(body)
            if "state" in body:
                check(body["state"] in ("open", "closed"), validation_failed("state", "invalid"), "bad state")
                issue["state"] = body["state"]
            if body.get("state_reason") is not None:
                check(body["state_reason"] in ("completed", "not_planned", "reopened"),
                      validation_failed("state_reason", "invalid"), "bad state_reason")
                issue["state_reason"] = body["state_reason"]
            return Reply(200, issue)
        raise Invalid(Reply(404, {"message": "Not Found", "documentation_url": DOCS}),
                      f"no such endpoint {request.method} {request.path}")

    @staticmethod
    def _common(body: dict) -> None:
        if "body" in body and body["body"] is not None:
            check(isinstance(body["body"], str) and len(body["body"]) <= 65536,
                  validation_failed("body", "too_long"), "body too long")
        for key in ("labels", "assignees"):
            if key in body:
                check(isinstance(body[key], list) and all(isinstance(v, str) for v in body[key]),
                      validation_failed(key, "invalid"), f"{key} must be a list of strings")

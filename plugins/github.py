"""``github`` incident sink: a GitHub issue per failed rollout, a comment per update,
closed on resolve.

REST API with ``Authorization: Bearer <token>`` (a fine-grained token with Issues:
write), ``X-GitHub-Api-Version`` and a ``User-Agent`` (GitHub refuses requests without
one). The issue body ends with an HTML comment carrying the dedup key; before opening
an issue the sink looks for one with that marker among the repository's issues with
the same labels, so a run killed after GitHub created the issue and before the number
was stored does not open a second one. Progress (issue number, the last revision
commented) is kept in the ref as it happens, so a close that failed is retried without
commenting twice. Rate limits (403/429 with ``x-ratelimit-remaining: 0``) wait for
``x-ratelimit-reset`` when it is near, else stay spooled.
"""

from __future__ import annotations

from pydantic import Field

from guardrail import HttpSettings, HttpSink, clip, hookimpl, markdown, update_markdown

BODY_LIMIT = 65536


class GitHubSink(HttpSink):
    class Settings(HttpSettings):
        repository: str = Field(pattern=r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$", description="owner/name")
        token: str = Field(min_length=1, description="${env:GITHUB_TOKEN}")
        url: str = Field("https://api.github.com", pattern=r"^https?://",
                         description="API root; GitHub Enterprise Server: https://HOST/api/v3")
        labels: list[str] = Field(default_factory=lambda: ["incident", "guardrail"], description="labels of the issue opened")
        assignees: list[str] = Field(default_factory=list, description="GitHub users the issue is assigned to")

    def notify(self, incident: dict, ref: dict | None) -> dict:
        ref = ref if ref is not None else {}
        repo = f"{self.settings.url.rstrip('/')}/repos/{self.settings.repository}"
        revision = incident.get("revision", 0)
        if not ref.get("issue"):
            found = self._find(repo, incident["dedup_key"])
            if found is None:
                body = {"title": clip(f"[guardrail] {incident['title']}", 256),
                        "body": clip(markdown(incident), BODY_LIMIT), "labels": self.settings.labels}
                if self.settings.assignees:
                    body["assignees"] = self.settings.assignees
                found = self.request("POST", f"{repo}/issues", json_body=body, headers=self._headers()).json()
                ref["commented"] = revision  # the body says it all
            ref.update(issue=found["number"], url=found.get("html_url"))
        if ref.get("commented", -1) < revision:
            self.request("POST", f"{repo}/issues/{ref['issue']}/comments", headers=self._headers(),
                         json_body={"body": clip(update_markdown(incident), BODY_LIMIT)})
            ref["commented"] = revision
        if incident["status"] == "resolved" and not ref.get("closed"):
            self.request("PATCH", f"{repo}/issues/{ref['issue']}", headers=self._headers(),
                         json_body={"state": "closed", "state_reason": "completed"})
            ref["closed"] = True
        return ref

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.settings.token}", "Accept": "application/vnd.github+json",
                "X-GitHub-Api-Version": "2022-11-28"}

    def _find(self, repo: str, dedup_key: str) -> dict | None:
        """An issue an earlier, interrupted delivery already opened for this incident."""
        params = {"state": "all", "per_page": "50", "sort": "created", "direction": "desc"}
        if self.settings.labels:
            params["labels"] = ",".join(self.settings.labels)
        issues = self.request("GET", f"{repo}/issues", headers=self._headers(), params=params).json()
        marker = f"<!-- guardrail-incident: {dedup_key} -->"
        return next((i for i in issues if isinstance(i, dict) and marker in (i.get("body") or "")), None)


@hookimpl(trylast=True)
def guardrail_register_incident_sinks(register):
    register("github", GitHubSink)

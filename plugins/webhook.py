"""``webhook`` deployer, action and incident sink: a JSON POST to a URL you run.

The incident sink posts ``{"event": "incident.<status>", "incident": {...}}``. With a
``secret`` it adds ``X-Guardrail-Signature: sha256=<hex HMAC-SHA256 of the body bytes>``
(the receiver recomputes it over the raw body before parsing) and, always,
``X-Guardrail-Delivery: <incident id>:<revision>`` so a receiver can drop the repeat of
an update re-sent after a crash.
"""

from __future__ import annotations

import hashlib
import hmac
import json

from pydantic import BaseModel, ConfigDict, Field

from guardrail import (Action, ActionRun, Deployer, Duration, HttpSettings, HttpSink, Outcome, Readiness, Target,
                       Template, hookimpl, post_json, render_value)
from guardrail.plugin.templates import escape_url


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: Template = Field(description="where to POST; templates allowed")
    headers: dict[str, str] = Field(default_factory=dict, description="e.g. Authorization: Bearer ${env:TOKEN}")
    timeout: Duration = Field(10.0, gt=0, description="per request")
    retries: int = Field(2, ge=0, le=10, description="retries on 5xx, 408, 429 and connection errors")
    body: dict | None = Field(None, description="extra JSON fields; templates allowed")


def _post(settings: Settings, variables: dict, payload: dict, redact) -> Outcome:
    try:
        url = render_value(settings.url, variables, escape_url)  # the body is JSON: its values need no escaping
    except ValueError as exc:
        return Outcome(False, f"url: {exc}")
    extra = render_value(settings.body or {}, variables)
    return post_json(url, {**payload, **extra}, headers=settings.headers, timeout=settings.timeout,
                     retries=settings.retries, redact=redact)


def _url_problems(settings: Settings, regions: list[dict]) -> Readiness:
    """The URL, rendered for every region, is an http(s) URL with a host."""
    from urllib.parse import urlsplit

    problems: Readiness = []
    for variables in regions or [{}]:
        try:
            url = str(render_value(settings.url, {"service": "-", "rollout_id": "-", **variables}))
            parts = urlsplit(url)
            port_ok = parts.port is None or parts.port > 0
        except (KeyError, ValueError) as exc:
            problems.append((("url",), f"not a URL: {exc}"))
            break
        if parts.scheme not in ("http", "https") or not parts.hostname or not port_ok:
            problems.append((("url",), "expected an http:// or https:// URL with a host"))
            break
    return problems


class WebhookDeployer(Deployer):
    Settings = Settings

    def _call(self, target: Target) -> Outcome:
        variables = {**target.vars, "region": target.region, "version": target.version,
                     "previous": target.previous, "service": target.service}
        payload = {"action": target.action, "service": target.service, "region": target.region,
                   "version": target.version if target.action == "deploy" else target.previous,
                   "idempotency_key": target.key}
        return _post(self.settings, variables, payload, self.context.redact)

    deploy = _call
    rollback = _call

    def validate_ready(self, regions: list[dict]) -> Readiness:
        return _url_problems(self.settings, regions)


class WebhookAction(Action):
    Settings = Settings

    def templates(self) -> list[str]:
        return [self.settings.url]

    def validate_ready(self, regions: list[dict]) -> Readiness:
        return _url_problems(self.settings, regions)

    def run(self, run: ActionRun) -> Outcome:
        variables = {**run.vars, "service": run.service, "rollout_id": run.rollout_id}
        if run.region is not None:
            variables["region"] = run.region
        payload = {"phase": run.phase, "service": run.service, "region": run.region,
                   "rollout_id": run.rollout_id, "idempotency_key": run.key}
        return _post(self.settings, variables, payload, self.context.redact)


class WebhookSink(HttpSink):
    class Settings(HttpSettings):
        url: str = Field(pattern=r"^https?://", description="where to POST each incident update")
        headers: dict[str, str] = Field(default_factory=dict, description="e.g. Authorization: Bearer ${env:TOKEN}")
        secret: str | None = Field(None, description="HMAC-SHA256 key for X-Guardrail-Signature: ${env:HOOK_SECRET}")

    def notify(self, incident: dict, ref: dict | None) -> dict:
        body = json.dumps({"event": f"incident.{incident['status']}", "incident": incident}, sort_keys=True,
                          separators=(",", ":"), default=str).encode()
        headers = {**self.settings.headers, "Content-Type": "application/json",
                   "X-Guardrail-Event": f"incident.{incident['status']}",
                   "X-Guardrail-Delivery": f"{incident['id']}:{incident.get('revision', 0)}"}
        if self.settings.secret:
            headers["X-Guardrail-Signature"] = "sha256=" + sign(self.settings.secret, body)
        self.request("POST", self.settings.url, content=body, headers=headers)
        return {"deliveries": (ref or {}).get("deliveries", 0) + 1}


    def announce(self, notification: dict, ref: dict | None) -> dict:
        event = f"rollout.{notification['event']}"
        body = json.dumps({"event": event, "notification": notification}, sort_keys=True, separators=(",", ":"),
                          default=str).encode()
        headers = {**self.settings.headers, "Content-Type": "application/json", "X-Guardrail-Event": event,
                   "X-Guardrail-Delivery": f"{notification['id']}:{notification['revision']}"}
        if self.settings.secret:
            headers["X-Guardrail-Signature"] = "sha256=" + sign(self.settings.secret, body)
        self.request("POST", self.settings.url, content=body, headers=headers)
        return {"deliveries": (ref or {}).get("deliveries", 0) + 1}


def sign(secret: str, body: bytes) -> str:
    """The hex HMAC-SHA256 of ``body`` (what X-Guardrail-Signature carries after ``sha256=``)."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


@hookimpl(trylast=True)
def guardrail_register_deployers(register):
    register("webhook", WebhookDeployer)


@hookimpl(trylast=True)
def guardrail_register_incident_sinks(register):
    register("webhook", WebhookSink)


@hookimpl(trylast=True)
def guardrail_register_actions(register):
    register("webhook", WebhookAction)

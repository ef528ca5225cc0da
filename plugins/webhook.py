"""``webhook`` deployer and action: a JSON POST to a URL you run."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from guardrail import hookimpl
from guardrail.http import post_json
from guardrail.interfaces import Action, ActionRun, Deployer, Outcome, Target
from guardrail.model.types import Duration, Template, render_value


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: Template = Field(description="where to POST; templates allowed")
    headers: dict[str, str] = Field(default_factory=dict, description="e.g. Authorization: Bearer ${env:TOKEN}")
    timeout: Duration = Field(10.0, gt=0)
    retries: int = Field(2, ge=0, le=10, description="retries on 5xx, 408, 429 and connection errors")
    body: dict | None = Field(None, description="extra JSON fields; templates allowed")


def _post(settings: Settings, variables: dict, payload: dict) -> Outcome:
    url = render_value(settings.url, variables)
    extra = render_value(settings.body or {}, variables)
    return post_json(url, {**payload, **extra}, headers=settings.headers, timeout=settings.timeout,
                     retries=settings.retries)


class WebhookDeployer(Deployer):
    Settings = Settings

    def _call(self, target: Target) -> Outcome:
        variables = {**target.vars, "region": target.region, "version": target.version,
                     "previous": target.previous, "service": target.service}
        payload = {"action": target.action, "service": target.service, "region": target.region,
                   "version": target.version if target.action == "deploy" else target.previous,
                   "idempotency_key": target.key}
        return _post(self.settings, variables, payload)

    deploy = _call
    rollback = _call


class WebhookAction(Action):
    Settings = Settings

    def templates(self) -> list[str]:
        return [self.settings.url]

    def run(self, run: ActionRun) -> Outcome:
        variables = {**run.vars, "service": run.service, "rollout_id": run.rollout_id}
        if run.region is not None:
            variables["region"] = run.region
        payload = {"phase": run.phase, "service": run.service, "region": run.region,
                   "rollout_id": run.rollout_id, "idempotency_key": run.key}
        return _post(self.settings, variables, payload)


@hookimpl(trylast=True)
def guardrail_register_deployers(register):
    register("webhook", WebhookDeployer)


@hookimpl(trylast=True)
def guardrail_register_actions(register):
    register("webhook", WebhookAction)

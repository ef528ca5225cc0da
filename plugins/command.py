"""``command`` deployer and action: argv templates run without a shell.

A value such as a region named ``eu; rm -rf /`` reaches the program as one argument.
The idempotency key of each call is in ``GUARDRAIL_IDEMPOTENCY_KEY`` (and the
``{{idempotency_key}}`` template) so a deploy script can skip a repeat after a crash;
``GUARDRAIL_CLOCK_NOW`` is the rollout's clock (epoch seconds; virtual in simulations).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from guardrail import (Action, ActionRun, Deployer, Duration, Outcome, Readiness, Target, Template, hookimpl,
                       program_problem, render_value, run_argv)


class _Base(BaseModel):
    model_config = ConfigDict(extra="forbid")
    timeout: Duration = Field(600.0, gt=0, description="kill the program after this long")
    env: dict[str, str] = Field(default_factory=dict, description="extra environment variables")
    cwd: str | None = Field(None, description="working directory, relative to the plan")


def _programs(settings: _Base, context, keys: tuple[str, ...], regions: list[dict]) -> Readiness:
    """Each argv's program, rendered for every region, exists and is executable."""
    cwd = context.base_dir / settings.cwd if settings.cwd else context.base_dir
    problems: Readiness = []
    for key in keys:
        seen = set()
        for variables in regions or [{}]:
            try:
                program = str(_argv(getattr(settings, key)[:1], {"idempotency_key": "-", **variables})[0])
            except (KeyError, IndexError):
                continue  # a template the plan validation already reported
            if program in seen:
                continue
            seen.add(program)
            problem = program_problem(program, cwd=cwd, env=settings.env)
            if problem:
                problems.append(((key, 0), problem))
    return problems


def _argv(template: list[str], variables: dict) -> list[str]:
    out: list[str] = []
    for part in template:
        value = render_value(part, variables)
        out.extend(value if isinstance(value, list) else [value])
    return out


class CommandDeployer(Deployer):
    class Settings(_Base):
        deploy: list[Template] = Field(min_length=1, description='argv, e.g. ["./deploy.sh", "{{region}}", "{{version}}"]')
        rollback: list[Template] = Field(min_length=1, description='argv, e.g. ["./deploy.sh", "{{region}}", "{{previous}}"]')

    def _run(self, argv_template: list[str], target: Target) -> Outcome:
        variables = {**target.vars, "region": target.region, "version": target.version, "previous": target.previous,
                     "service": target.service, "idempotency_key": target.key}
        env = {**self.settings.env, "GUARDRAIL_IDEMPOTENCY_KEY": target.key, "GUARDRAIL_ACTION": target.action,
               "GUARDRAIL_CLOCK_NOW": repr(self.context.clock.now())}
        cwd = self.context.base_dir / self.settings.cwd if self.settings.cwd else self.context.base_dir
        return run_argv(_argv(argv_template, variables), timeout=self.settings.timeout, cwd=cwd, env=env)

    def deploy(self, target: Target) -> Outcome:
        return self._run(self.settings.deploy, target)

    def rollback(self, target: Target) -> Outcome:
        return self._run(self.settings.rollback, target)

    def validate_ready(self, regions: list[dict]) -> Readiness:
        return _programs(self.settings, self.context, ("deploy", "rollback"), regions)


class CommandAction(Action):
    class Settings(_Base):
        run: list[Template] = Field(min_length=1, description='argv, e.g. ["./pause-injection.sh", "{{region}}"]')

    def templates(self) -> list[str]:
        return list(self.settings.run)

    def validate_ready(self, regions: list[dict]) -> Readiness:
        return _programs(self.settings, self.context, ("run",), regions)

    def run(self, run: ActionRun) -> Outcome:
        variables = {**run.vars, "service": run.service, "rollout_id": run.rollout_id, "idempotency_key": run.key}
        if run.region is not None:
            variables["region"] = run.region
        env = {**self.settings.env, "GUARDRAIL_IDEMPOTENCY_KEY": run.key, "GUARDRAIL_PHASE": run.phase,
               "GUARDRAIL_CLOCK_NOW": repr(self.context.clock.now())}
        cwd = self.context.base_dir / self.settings.cwd if self.settings.cwd else self.context.base_dir
        return run_argv(_argv(self.settings.run, variables), timeout=self.settings.timeout, cwd=cwd, env=env)


@hookimpl(trylast=True)
def guardrail_register_deployers(register):
    register("command", CommandDeployer)


@hookimpl(trylast=True)
def guardrail_register_actions(register):
    register("command", CommandAction)

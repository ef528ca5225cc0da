"""``noop`` deployer: deploys nothing, succeeds. For dry runs of a plan's policies."""

from guardrail import Deployer, Outcome, Target, hookimpl


class NoopDeployer(Deployer):
    def deploy(self, target: Target) -> Outcome:
        return Outcome(True, f"noop: {target.region} would run {target.version}")

    def rollback(self, target: Target) -> Outcome:
        return Outcome(True, f"noop: {target.region} would return to {target.previous}")


@hookimpl(trylast=True)
def guardrail_register_deployers(register):
    register("noop", NoopDeployer)

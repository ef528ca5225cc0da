"""``test`` and ``backtest``: prove a policy before it guards a rollout.

``guardrail test`` runs policy unit tests offline (``guardrail_plugins.policytest``);
``guardrail backtest`` replays a policy over real history (``guardrail.tools.backtest``),
or a whole rollout plan (``guardrail.tools.replay``, through ``replay_command``).
Both are thin: parse arguments, call the library, print.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from guardrail.cli.console import out_console
from guardrail.text import printable
from guardrail.text import iso
from guardrail.errors import UsageError
from guardrail.language.types import format_duration
from guardrail.cli.check_command import parse_time, parse_vars
from guardrail.cli.options import JsonOption, Output, OutputOption, emit, wants_json
from guardrail.cli.replay_command import is_plan, run_plan
from guardrail.cli.sweep_command import from_history, refuse_in_policy_form
from guardrail.cli.report_commands import ReportOption
from guardrail.text import number

if TYPE_CHECKING:  # the backtest's imports (the engine's) wait for the command that needs them
    from guardrail.tools.backtest import BacktestResult

STYLE = {"pass": "green", "fail": "bold red", "inconclusive": "yellow", "halt": "yellow", "warn": "yellow"}


def backtest(
    policies: Annotated[list[Path], typer.Argument(help="policy file(s) to replay, or one rollout plan (kind: Rollout)")],
    region: Annotated[str | None, typer.Option("--region", help="policy form: the region the change is imagined deployed to")] = None,
    deployed_at: Annotated[str | None, typer.Option("--deployed-at", help="when (ISO 8601, UTC unless it says, or epoch); for a plan: as if guardrail had run it from then")] = None,
    deployed: Annotated[list[str], typer.Option("--deployed", metavar="REGION=TIME", help="plan form: when history shows REGION on the new version (repeatable)")] = [],  # noqa: B006
    prometheus: Annotated[str | None, typer.Option("--prometheus", metavar="URL", help="the Prometheus holding the history")] = None,
    until: Annotated[str | None, typer.Option("--until", help="last evaluation; default: one hour after --deployed-at (a plan: its decision)")] = None,
    control: Annotated[list[str], typer.Option("--control", help="a region still on the old version (repeatable)")] = [],  # noqa: B006
    var: Annotated[list[str], typer.Option("--var", help="template variable NAME=VALUE (repeatable)")] = [],  # noqa: B006
    state: Annotated[Path | None, typer.Option("--state", help="keep the virtual rollout in this state file")] = None,
    report: ReportOption = None,
    version_metric: Annotated[str | None, typer.Option("--version-metric", metavar="PROMQL", help="plan form: read history's deploy times from this version series, e.g. 'app_build_info{service=\"mail-sender\"}'")] = None,
    version: Annotated[str | None, typer.Option("--version", help="with --version-metric: the version whose deploys are replayed")] = None,
    region_label: Annotated[str, typer.Option("--region-label", help="the version series' label naming the region")] = "region",
    version_label: Annotated[str, typer.Option("--version-label", help="the version series' label naming the version")] = "version",
    region_value: Annotated[str, typer.Option("--region-value", help="the region label's value for a plan region, a template over its vars, e.g. '{{aws_region}}'")] = "{{region}}",
    sweep: Annotated[bool, typer.Option("--sweep", help="replay the plan at every past deploy between --from and --to (--version-metric, or --every): exit 1 if any would have rolled back, else 3 if any would have halted, else 0")] = False,
    from_: Annotated[str | None, typer.Option("--from", help="the window's start: required with --sweep; with --version-metric, default 30 days before --to")] = None,
    to: Annotated[str | None, typer.Option("--to", help="the window's end (default: now)")] = None,
    every: Annotated[str | None, typer.Option("--every", metavar="DURATION", help="--sweep at synthetic deploy times, e.g. 6h")] = None,
    output: OutputOption = Output.text,
    as_json: JsonOption = False,
) -> None:
    """Replay policies over history as if a change was deployed at --deployed-at, or a whole rollout plan: exit 0 would pass (promote), 1 would fail (roll back), 3 would halt."""
    from guardrail.tools.backtest import backtest as run

    if len(policies) == 1 and is_plan(policies[0]):
        deployed = from_history(policies[0], deployed=deployed, deployed_at=deployed_at, until=until, state=state,
                                report=report, sweep=sweep, metric=version_metric, version=version,
                                region_label=region_label, version_label=version_label, region_value=region_value,
                                start=from_, end=to, every=every, prometheus=prometheus, variables=parse_vars(var),
                                machine=wants_json(output, as_json), region=region, control=control)
        run_plan(policies[0], deployed=deployed, deployed_at=deployed_at, until=until, prometheus=prometheus,
                 variables=parse_vars(var), state=state, report=report, machine=wants_json(output, as_json),
                 region=region, control=control, version=version if version_metric else None)
    if deployed or report is not None:
        raise UsageError("--deployed and --report are for a rollout plan (kind: Rollout), not a policy file")
    refuse_in_policy_form(sweep=sweep, version_metric=version_metric, version=version, every=every, from_=from_, to=to)
    if region is None:
        raise UsageError("--region is required with a policy file: the region the change is imagined deployed to")
    if deployed_at is None:
        raise UsageError("--deployed-at is required with a policy file: when the change is imagined deployed")
    start = parse_time(deployed_at, "--deployed-at")
    end = parse_time(until, "--until") if until is not None else None
    sources = {"prometheus": {"plugin": "prometheus", "url": prometheus}} if prometheus else {}
    if not sources:
        raise UsageError("--prometheus URL is required: a backtest reads history from it")
    result = run(policies, region=region, deployed_at=start, until=end, controls=control, sources=sources,
                 variables=parse_vars(var), state=state)
    if wants_json(output, as_json):
        emit(result.as_dict(), exit_code=result.exit_code)
    else:
        print_result(result)
    raise typer.Exit(result.exit_code)


def print_result(result: BacktestResult) -> None:
    from rich.table import Table
    from rich.text import Text

    def offset(at: float | None) -> str:
        if at is None:
            return "-"
        return f"{iso(at)} (+{format_duration(at - result.deployed_at)})"

    controls = f", control {', '.join(result.controls)}" if result.controls else ""
    out_console.print(printable(f"backtest in {result.region}{controls}: deployed at {iso(result.deployed_at)}, "
                                f"evaluated until {iso(result.until)}"), markup=False)
    verdict = {"fail": "would have FAILED (and rolled back)", "pass": "would have PASSED",
               "halt": "would have HALTED (no clean evidence)"}[result.outcome]
    out_console.print(Text(f"{verdict} at {offset(result.decided_at)}", style=STYLE[result.outcome]))
    for finding in result.findings:
        out_console.print(Text(printable(f"  {finding['region']}/{finding['policy']}/{finding['check']}: {finding['reason']}")))
        out_console.print(Text(printable(f"    query: {finding['query']}  first breach: {offset(finding['first_breach_at'])}")))
    if result.outcome == "halt" and result.reason:
        out_console.print(Text(printable(f"  {result.reason}")))

    def since(at: float | None) -> str:  # the deploy time is in the line above: offsets suffice here
        return "-" if at is None else f"+{format_duration(at - result.deployed_at)}"

    # The check's name is what tells rows apart: never cut; the numbers come after it.
    table = Table(box=None, show_edge=False)
    table.add_column("check", no_wrap=True)
    for column in ("evals", "baseline", "last", "verdict", "breach", "failed"):
        table.add_column(column, no_wrap=True)
    for c in result.checks:
        shown = "breaching" if c.hold and c.hold.startswith("breaching") else c.status
        table.add_row(Text(printable(f"{c.policy}/{c.check}")), str(c.evaluations), number(c.reference),
                      number(c.value), Text(shown, style=STYLE.get(c.status, "")), since(c.first_breach_at),
                      since(c.failed_at))
    out_console.print(table)
    for c in result.checks:  # in words, under the table: it would squeeze the check's name
        if c.hold:
            out_console.print(Text(printable(f"{c.policy}/{c.check}: {c.hold}")))
    for c in result.warnings:  # apart: a warning never decides
        out_console.print(Text(printable(f"warning: {c.policy}/{c.check} warned from {since(c.warned_at)}, "
                                         f"{c.warnings} evaluation{'s' if c.warnings != 1 else ''} (never failing)"),
                               style=STYLE["warn"]))
    for skip in result.skipped:
        out_console.print(Text(printable(f"not replayed: {skip['policy']}/{skip['check']}: {skip['why']}"), style="dim"))


def register(app: typer.Typer) -> None:
    pass
    app.command()(backtest)

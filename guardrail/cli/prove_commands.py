"""``test`` and ``backtest``: prove a policy before it guards a rollout.

``guardrail test`` runs policy unit tests offline (``guardrail_plugins.policytest``);
``guardrail backtest`` replays a policy over real history (``guardrail.tools.backtest``).
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
from guardrail.text import number

if TYPE_CHECKING:  # the backtest's imports (the engine's) wait for the command that needs them
    from guardrail.tools.backtest import BacktestResult

STYLE = {"pass": "green", "fail": "bold red", "inconclusive": "yellow", "halt": "yellow"}


def backtest(
    policies: Annotated[list[Path], typer.Argument(help="policy file(s) to replay")],
    region: Annotated[str, typer.Option("--region", help="the region the change is imagined deployed to")],
    deployed_at: Annotated[str, typer.Option("--deployed-at", help="when (ISO 8601, UTC unless it says, or epoch)")],
    prometheus: Annotated[str | None, typer.Option("--prometheus", metavar="URL", help="the Prometheus holding the history")] = None,
    until: Annotated[str | None, typer.Option("--until", help="last evaluation; default: one hour after --deployed-at")] = None,
    control: Annotated[list[str], typer.Option("--control", help="a region still on the old version (repeatable)")] = [],  # noqa: B006
    var: Annotated[list[str], typer.Option("--var", help="template variable NAME=VALUE (repeatable)")] = [],  # noqa: B006
    state: Annotated[Path | None, typer.Option("--state", help="keep the virtual rollout in this state file")] = None,
    output: OutputOption = Output.text,
    as_json: JsonOption = False,
) -> None:
    """Replay policies over history as if a change was deployed at --deployed-at: exit 0 would pass, 1 would fail, 3 would halt."""
    from guardrail.tools.backtest import backtest as run

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
        shown = c.status + (" (pending)" if "breaching for" in c.reason and c.status == "pass" else "")
        table.add_row(Text(printable(f"{c.policy}/{c.check}")), str(c.evaluations), number(c.reference),
                      number(c.value), Text(shown, style=STYLE.get(c.status, "")), since(c.first_breach_at),
                      since(c.failed_at))
    out_console.print(table)
    for skip in result.skipped:
        out_console.print(Text(printable(f"not replayed: {skip['policy']}/{skip['check']}: {skip['why']}"), style="dim"))


def register(app: typer.Typer) -> None:
    pass
    app.command()(backtest)

"""``guardrail backtest PLAN.yaml --version-metric ...`` and ``--sweep``: deploy times read
from history (``guardrail.tools.deploys``) and the false-alarm sweep (``guardrail.tools.sweep``).

``prove_commands.backtest`` hands a plan's history options to ``from_history``: a sweep
runs there (``run_sweep``); ``--version-metric`` turns into the ``--deployed`` times of one
version (``deployed_from_metric``; printed, on stderr under ``--output json``).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import typer

from guardrail.cli.check_command import parse_time
from guardrail.cli.console import err_console, out_console
from guardrail.errors import UsageError
from guardrail.language.types import format_duration
from guardrail.text import iso, number, parse_duration, printable

STYLE = {"promoted": "green", "rolled_back": "bold red", "halted": "yellow", "incomplete": "yellow", "skipped": "dim"}
DEFAULT_LOOKBACK = 30 * 86400.0
"""Without --from, a version series is read over the 30 days before --to."""


def from_history(plan: Path, *, deployed: list[str], deployed_at: str | None, until: str | None,
                 state: Path | None, report: Path | None, sweep: bool, metric: str | None, version: str | None,
                 region_label: str, version_label: str, region_value: str, start: str | None, end: str | None,
                 every: str | None, prometheus: str | None, variables: dict[str, Any], machine: bool,
                 region: str | None = None, control: list[str] | None = None) -> list[str]:
    """The ``--deployed`` pairs of the plan's replay, or (``--sweep``) run the sweep and exit."""
    sources = {"prometheus": {"plugin": "prometheus", "url": prometheus}} if prometheus else None
    spec = version_metric(metric, region_label=region_label, version_label=version_label,
                          region_value=region_value) if metric is not None else None
    if sweep:
        given = [name for name, value in (("--deployed", deployed), ("--deployed-at", deployed_at), ("--until", until),
                                          ("--state", state), ("--report", report), ("--version", version),
                                          ("--region", region), ("--control", control)) if value]
        if given:
            raise UsageError(f"{', '.join(given)}: not with --sweep, which finds its deploys in the window")
        since, to = window(start, end, required=True)
        run_sweep(plan, spec=spec, every=every, start=since, end=to, sources=sources, variables=variables,
                  machine=machine)
    if every is not None:
        raise UsageError("--every is for a --sweep: synthetic deploy times in its window")
    if spec is None:
        if version is not None or start is not None or end is not None:
            raise UsageError("--version, --from and --to go with --version-metric (or --sweep)")
        return deployed
    if deployed:
        raise UsageError("--deployed or --version-metric: history's deploy times come from one of them")
    since, to = window(start, end, required=False)
    found = deployed_from_metric(plan, spec, version, start=since, end=to, sources=sources, machine=machine)
    return [f"{region}={at!r}" for region, at in found.items()]


def refuse_in_policy_form(**given: Any) -> None:
    """The history options mean nothing for a policy file."""
    named = [f"--{name.strip('_').replace('_', '-')}" for name, value in given.items() if value]
    if named:
        raise UsageError(f"{', '.join(named)}: for a rollout plan (kind: Rollout), not a policy file")


def version_metric(metric: str, *, region_label: str, version_label: str, region_value: str) -> Any:
    from guardrail.tools.deploys import VersionMetric

    return VersionMetric(metric, region_label=region_label, version_label=version_label, region_value=region_value)


def window(start: str | None, end: str | None, *, required: bool) -> tuple[float, float]:
    """(--from, --to) as epoch seconds; --to defaults to now, --from to 30 days before it."""
    if required and start is None:
        raise UsageError("--sweep needs the window: --from TIME (and --to TIME, default now)")
    to = parse_time(end, "--to") if end is not None else time.time()
    since = parse_time(start, "--from") if start is not None else to - DEFAULT_LOOKBACK
    if to <= since:
        raise UsageError("--to must be after --from")
    return since, to


def deployed_from_metric(plan: Path, spec: Any, version: str | None, *, start: float, end: float,
                         sources: dict[str, dict[str, Any]] | None, machine: bool) -> dict[str, float]:
    """History's deploy time of each region of ``plan`` for ``version``, printed (stderr when
    the document on stdout is JSON), as ``--deployed`` would give them."""
    from guardrail.language.loader import load_plan
    from guardrail.plugin.manager import get_plugin_manager
    from guardrail.tools.deploys import find_deploy

    if version is None:
        raise UsageError("--version-metric needs --version VERSION: the version whose deploys are replayed "
                         "(or --sweep, to replay every version found)")
    registry = get_plugin_manager().registry
    deploy = find_deploy(load_plan(plan, registry), registry, spec, version, start=start, end=end, sources=sources)
    console = err_console if machine else out_console
    console.print(printable(f"deploys of {version} found in {spec.metric}:"), markup=False)
    for region, at in deploy.regions.items():
        note = " (already running when the window opened: at or before)" if region in deploy.before else ""
        console.print(printable(f"  {region}  {iso(at)}{note}"), markup=False)
    for region in deploy.never:
        console.print(printable(f"  {region}  never (between {iso(start)} and {iso(end)})"), markup=False)
    return dict(deploy.regions)


def run_sweep(plan: Path, *, spec: Any, every: str | None, start: float, end: float,
              sources: dict[str, dict[str, Any]] | None, variables: dict[str, Any], machine: bool) -> None:
    from guardrail.cli.options import emit
    from guardrail.tools.sweep import sweep

    if (spec is None) == (every is None):
        raise UsageError("--sweep needs the past deploys: --version-metric METRIC (every version found), "
                         "or --every DURATION (synthetic deploy times), not both")
    try:
        period = parse_duration(every) if every is not None else None
    except ValueError as exc:
        raise UsageError(f"--every {every!r}: {exc}") from None
    progress = None if machine else (lambda row: err_console.print(
        printable(f"  {row.deploy.label}: {row.outcome}"), markup=False, style=STYLE.get(row.outcome, "")))
    result = sweep(plan, start=start, end=end, version_metric=spec, period=period, sources=sources,
                   variables=variables, on_row=progress)
    if machine:
        emit({"command": "backtest", "outcome": _outcome(result.exit_code), **result.as_dict()},
             exit_code=result.exit_code)
    else:
        print_sweep(result)
    raise typer.Exit(result.exit_code)


def _outcome(code: int) -> str:
    return {0: "clean", 1: "stopped"}.get(code, "halted")


def print_sweep(result: Any) -> None:
    """A row per deploy (what the plan would have done, and on which check), then the
    evidence of every stopped or halted one, then the count."""
    from rich.table import Table
    from rich.text import Text

    out_console.print(printable(f"sweep of {result.plan}: {len(result.rows)} deploys ({result.found_by}) between "
                                f"{iso(result.start)} and {iso(result.end)}"), markup=False)
    versions = any(row.deploy.version is not None for row in result.rows)
    table = Table(box=None, show_edge=False)
    for column in (["version"] if versions else []) + ["deployed", "outcome", "decided", "deciding check"]:
        table.add_column(column, no_wrap=column != "deciding check")
    for row in result.rows:
        decided = "-" if row.decided_at is None else f"+{format_duration(row.decided_at - row.deploy.at)}"
        deciding = f"{row.policy}/{row.check} in {row.region}" if row.check else "-"
        cells = [Text(printable(row.deploy.version))] if versions else []
        table.add_row(*cells, _minute(row.deploy.at), Text(row.outcome, style=STYLE.get(row.outcome, "")), decided,
                      Text(printable(deciding)))
    out_console.print(table)
    for row in result.rows:
        if row.outcome in ("promoted",):
            continue
        lines = [_evidence(f) for f in row.evidence] or [row.reason or ""]
        for line in lines:
            out_console.print(Text(printable(f"  {row.deploy.label}: {line}"), style="dim" if row.outcome == "skipped"
                                   else ""))
    for row in result.rows:
        for caveat in row.caveats:
            out_console.print(Text(printable(f"  caveat: {row.deploy.label}: {caveat}"), style="yellow"))
    style = "bold red" if result.exit_code == 1 else "yellow" if result.exit_code == 3 else "green"
    out_console.print(Text(printable(result.summary), style=style))
    for name, entry in result.by_check.items():
        regions = ", ".join(f"{r} x{n}" for r, n in entry["regions"].items())
        hours = ", ".join(f"{h} x{n}" for h, n in sorted(entry["hours_utc"].items()))
        out_console.print(Text(printable(f"  {name}: stopped {entry['stopped']} (in {regions}; decided at {hours} UTC)")))


def _minute(at: float) -> str:
    """``2024-07-10T06:30Z``: a deploy's time, narrow enough for the table."""
    return iso(at)[:16] + "Z"


def _evidence(finding: dict[str, Any]) -> str:
    """``r3/errors/error-rate: 32.4 (fails if > 10); held 2m``: the engine's own words for a finding."""
    return (f"{finding.get('region')}/{finding.get('policy')}/{finding.get('check')}: "
            f"{finding.get('reason') or number(finding.get('value'))}")

"""``guardrail backtest PLAN.yaml``: the whole-plan form of ``backtest`` (``guardrail.tools.replay``).

``prove_commands.backtest`` sends a Rollout document here; this module parses the
deploy times, runs the replay, and prints it: a few lines of answer, a table of the
regions (guardrail's exposure next to history's), the same JSON document as a live
rollout's (``--output json``, marked ``replay: true``) and the same HTML report.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import typer

from guardrail.cli.check_command import parse_time
from guardrail.cli.console import out_console
from guardrail.errors import UsageError
from guardrail.language.documents import display_name
from guardrail.language.types import format_duration
from guardrail.text import iso, printable

STYLE = {"promoted": "green", "rolled_back": "bold red", "halted": "yellow", "incomplete": "yellow"}
VERDICT = {"promoted": "would have PROMOTED every wave", "rolled_back": "would have ROLLED BACK",
           "halted": "would have HALTED (no clean evidence)", "incomplete": "answers only part of the plan"}


def is_plan(path: Path) -> bool:
    """Whether ``path`` is a rollout plan (``kind: Rollout``); anything else is left to
    the policy form, which reports its own errors."""
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return False
    return isinstance(data, dict) and data.get("kind") == "Rollout"


def parse_deployed(pairs: list[str]) -> dict[str, float]:
    """``REGION=TIME`` pairs (TIME: ISO 8601 or epoch seconds)."""
    out: dict[str, float] = {}
    for pair in pairs:
        region, sep, when = pair.partition("=")
        if not sep or not region.strip() or not when.strip():
            raise UsageError(f"--deployed {pair!r}: expected REGION=TIME, e.g. r3=2024-07-04T09:30:00Z")
        if region.strip() in out:
            raise UsageError(f"--deployed {region.strip()} is given twice")
        out[region.strip()] = parse_time(when.strip(), f"--deployed {region.strip()}=")
    return out


def run_plan(plan: Path, *, deployed: list[str], deployed_at: str | None, until: str | None,
             prometheus: str | None, variables: dict[str, Any], state: Path | None, report: Path | None,
             machine: bool, region: str | None, control: list[str], version: str | None = None) -> None:
    from guardrail.cli.options import emit
    from guardrail.cli.report_commands import publish
    from guardrail.report.summary import summarize
    from guardrail.state.sqlite import SQLiteStore
    from guardrail.tools.replay import replay_plan

    if region is not None or control:
        raise UsageError(f"{plan} is a rollout plan: its waves say which regions are deployed and which are "
                         "the control; --region and --control are for a policy file")
    sources = {"prometheus": {"plugin": "prometheus", "url": prometheus}} if prometheus else None
    with tempfile.TemporaryDirectory(prefix="guardrail-replay-") as scratch:
        path = state if state is not None else Path(scratch) / "replay.db"
        result = replay_plan(plan, deployed=parse_deployed(deployed), deployed_at=parse_time(deployed_at, "--deployed-at"),
                             until=parse_time(until, "--until"), sources=sources, variables=variables, state=path,
                             version=version)
        if state is None:
            result.state_file = None
        store = SQLiteStore(path)
        try:
            summary = summarize(store, result.rollout_id)
            if machine:
                # A rollout's document, its times as a rollout's (ISO), with the replay's answer.
                emit({**summary, **result.as_dict(), "started_at": summary["started_at"]}, exit_code=result.exit_code)
            else:
                print_replay(result)
            publish(store, result.rollout_id, html=report, junit=None, machine_output=machine)
        finally:
            store.close()
    if report is not None and not machine:
        out_console.print(printable(f"report: {report}"), markup=False)
    raise typer.Exit(result.exit_code)


def print_replay(result: Any) -> None:
    from rich.table import Table
    from rich.text import Text

    def at(when: float | None) -> str:
        return "-" if when is None else f"{iso(when)} (+{format_duration(when - result.started_at)})"

    out_console.print(printable(f"replay of {display_name(Path(result.plan))} over history ({result.service} {result.version}), "
                                f"from {iso(result.started_at)}"), markup=False)
    line = f"{VERDICT[result.outcome]} at {at(result.decided_at)}"
    if result.outcome == "rolled_back":
        line += f": {result.policy}/{result.check} in {result.region}"
    out_console.print(Text(printable(line), style=STYLE[result.outcome]))
    for finding in result.findings:
        out_console.print(Text(printable(f"  {finding['region']}/{finding['policy']}/{finding['check']}: "
                                         f"{finding['reason']}")))
        if finding.get("query"):
            out_console.print(Text(printable(f"    query: {finding['query']}")), style="dim")
    if result.outcome != "rolled_back" and result.reason:
        out_console.print(Text(printable(f"  {result.reason}")))
    def since(when: float | None) -> str:  # the start is in the first line: offsets suffice here
        return "-" if when is None else f"{'+' if when >= result.started_at else '-'}" \
                                        f"{format_duration(abs(when - result.started_at))}"

    # Guardrail's exposure next to history's (which kept the change).
    table = Table(box=None, show_edge=False)
    for column in ("wave", "region", "deployed", "rolled back", "exposed", "in history"):
        table.add_column(column, no_wrap=True)
    for e in result.exposure:
        table.add_row(e.wave, e.region, since(e.deployed_at), since(e.rolled_back_at),
                      format_duration(e.exposed_for) if e.deployed_at is not None else "never",
                      since(e.history_deployed_at) + (" (kept)" if e.history_deployed_at is not None else ""))
    out_console.print(table)
    never = [e.region for e in result.exposure if e.deployed_at is None]
    if never and result.outcome in ("rolled_back", "halted"):
        seen = [e.region for e in result.exposure if e.deployed_at is None and e.history_deployed_at is not None]
        out_console.print(printable(f"never exposed with guardrail: {', '.join(never)}"
                                    + (f" (history ran {', '.join(seen)} on the new version)" if seen else "")),
                          markup=False)
    if result.recovery:
        out_console.print(Text(printable(f"recovery {result.recovery}"), style="dim"))
    for caveat in result.caveats:
        out_console.print(Text(printable(f"caveat: {caveat}"), style="yellow"))
    for skip in result.skipped:
        out_console.print(Text(printable(f"not replayed: {skip['policy']}/{skip['check']}: {skip['why']}"), style="dim"))
    if result.state_file:
        out_console.print(printable(f"state: {result.state_file} (rollout {result.rollout_id})"), markup=False)

"""Commands for release engineers: rollout, resume, status, history, abort, pause,
approve, unlock."""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Callable

import typer
from rich.markup import escape
from rich.table import Table

from guardrail.errors import ExitCode, LockedError
from guardrail.cli.options import JsonOption, StateOption, state_path
from guardrail.cli.report_commands import JunitOption, ReportOption, publish


class Output(str, Enum):
    text = "text"
    json = "json"


OutputOption = Annotated[Output, typer.Option("--output", "-o", help="text for people, json for pipelines")]
IdArgument = Annotated[str, typer.Argument(help="rollout id (a unique prefix is enough)", show_default=False)]


def _guardrail(state: Path | None, progress: bool):
    from guardrail.api import Guardrail
    from guardrail.plugin.manager import get_plugin_manager
    from guardrail.cli import out_console
    from guardrail.cli.progress import Progress

    listener = Progress(out_console) if progress else None
    pm = get_plugin_manager(extra_plugins=[listener] if listener else [])
    return Guardrail(state_path(state), pm=pm), listener


def _finish(api, result, output: Output, listener, report: Path | None = None, junit: Path | None = None) -> None:
    from guardrail.cli import out_console

    if listener is not None:
        listener.close()
    summary = api.status(result.rollout_id)
    summary["exit_code"] = int(result.exit_code)
    if output is Output.json:
        typer.echo(json.dumps(summary, indent=2, default=str))
    else:
        _print_summary(summary)
        if result.exit_code == ExitCode.ROLLBACK_FAILED:
            out_console.print("[bold red]A PERSON IS NEEDED NOW[/bold red]: the system did not return to health.")
    publish(api.store, result.rollout_id, html=report, junit=junit, machine_output=output is Output.json)
    raise typer.Exit(int(result.exit_code))


def _run(state: Path | None, output: Output, call: Callable[[Any], Any], report: Path | None = None,
         junit: Path | None = None) -> None:
    api, listener = _guardrail(state, progress=output is Output.text)
    try:
        result = call(api)
    except LockedError as exc:
        if output is Output.json:
            typer.echo(json.dumps({"outcome": "locked", "service": exc.service, "holder": exc.holder,
                                   "rollout_id": exc.rollout_id, "exit_code": int(ExitCode.LOCKED)}, indent=2))
            raise typer.Exit(int(ExitCode.LOCKED)) from None
        raise
    finally:
        if listener is not None:
            listener.close()
    _finish(api, result, output, listener, report, junit)


def rollout(
    plan: Annotated[Path, typer.Argument(help="the rollout plan (kind: Rollout)", show_default=False)],
    state: StateOption = None,
    output: OutputOption = Output.text,
    override_window: Annotated[str | None, typer.Option(
        "--override-window", help="start inside a change freeze; the reason is recorded")] = None,
    report: ReportOption = None,
    junit: JunitOption = None,
    start_at: Annotated[str | None, typer.Option(
        "--start-at", help="with clock: virtual, when simulated time starts (ISO 8601 UTC or epoch seconds; "
                           "default: the current minute): the same start replays the same simulated run")] = None,
) -> None:
    """Deploy a change wave by wave, bake, and roll back on failure.

    Exit codes: 0 promoted, 1 rolled back, 2 invalid input, 3 halted,
    4 rollback failed (a person is needed), 5 locked by another rollout.
    """
    from guardrail.cli.check_command import parse_time

    clock_start = parse_time(start_at, "--start-at")
    _run(state, output, lambda api: api.rollout(plan, override_window=override_window, clock_start=clock_start),
         report, junit)


def resume(rollout_id: IdArgument, state: StateOption = None, output: OutputOption = Output.text,
           report: ReportOption = None, junit: JunitOption = None) -> None:
    """Continue a rollout that was halted, paused, or killed."""
    _run(state, output, lambda api: api.resume(rollout_id), report, junit)


def abort(rollout_id: IdArgument, state: StateOption = None, output: OutputOption = Output.text,
          reason: Annotated[str, typer.Option(help="recorded with the rollout")] = "aborted by a person",
          report: ReportOption = None, junit: JunitOption = None) -> None:
    """Roll back every region that runs the new version.

    If another process is running the rollout, it is asked to roll back at its next
    evaluation and reports the outcome itself; this command then exits 0.
    """
    from guardrail.api import Guardrail
    from guardrail.cli import out_console

    api = Guardrail(state_path(state))
    try:
        row = api.store.rollout(rollout_id)
        if api.abort_requested_of_running(row["id"], reason):
            holder = (api.store.lock(row["service"]) or {}).get("holder", "another process")
            if output is Output.json:
                typer.echo(json.dumps({"rollout_id": row["id"], "abort": "requested", "holder": holder}, indent=2))
            else:
                out_console.print(f"abort requested: {holder} rolls rollout {row['id']} back at its next evaluation;"
                                  f" follow it with `guardrail status {row['id']}`")
            return
    finally:
        api.close()
    _run(state, output, lambda api: api.abort(rollout_id, reason), report, junit)


def approve(rollout_id: IdArgument, state: StateOption = None, output: OutputOption = Output.text,
            wave: Annotated[str | None, typer.Option(help="the wave to approve (default: the one waiting)")] = None,
            report: ReportOption = None, junit: JunitOption = None) -> None:
    """Approve a wave that declares approval: manual, and continue the rollout."""

    def call(api):
        result = api.approve(rollout_id, wave)
        return result if result is not None else api._result(api.store.rollout(rollout_id)["id"])

    _run(state, output, call, report, junit)


def pause(rollout_id: IdArgument, state: StateOption = None,
          reason: Annotated[str, typer.Option(help="recorded with the rollout")] = "paused by a person") -> None:
    """Ask a running rollout to halt at its next evaluation (exit 3 there)."""
    from guardrail.cli import out_console

    api, _ = _guardrail(state, progress=False)
    api.pause(rollout_id, reason)
    out_console.print(f"pause requested for {rollout_id}; `guardrail resume {rollout_id}` continues it")


def unlock(service: Annotated[str, typer.Argument(help="the service whose lock to free")],
           state: StateOption = None) -> None:
    """Free a service's lock left by a dead process or a halted rollout."""
    from guardrail.cli import out_console

    api, _ = _guardrail(state, progress=False)
    lock = api.unlock(service)
    if lock is None:
        out_console.print(f"{service} was not locked")
    else:
        out_console.print(f"unlocked {service} (was held by rollout {lock['rollout_id']}, {lock['holder']})")


def status(rollout_id: Annotated[str | None, typer.Argument(help="rollout id; default: the latest")] = None,
           state: StateOption = None, as_json: JsonOption = False) -> None:
    """Show a rollout: regions, verdicts, failing checks, incident."""
    api, _ = _guardrail(state, progress=False)
    summary = api.status(rollout_id)
    if as_json:
        typer.echo(json.dumps(summary, indent=2, default=str))
    else:
        _print_summary(summary)


def history(state: StateOption = None, service: Annotated[str | None, typer.Option(help="only this service")] = None,
            as_json: JsonOption = False,
            limit: Annotated[int, typer.Option(help="how many rollouts")] = 20) -> None:
    """List past rollouts, newest first."""
    from guardrail.text import iso
    from guardrail.cli import out_console

    api, _ = _guardrail(state, progress=False)
    rows = api.history(service, limit)
    if as_json:
        keep = ("id", "service", "version", "previous", "state", "outcome", "reason", "clock")
        typer.echo(json.dumps([{k: r[k] for k in keep} | {"started_at": iso(r["clock_start"])} for r in rows], indent=2))
        return
    table = Table(box=None)
    cells = [(r["id"], r["service"], r["version"], r["state"], r["outcome"] or "-") for r in rows]
    # Ids and services are what people copy into the next command: never truncate a cell
    # (a CI log or a pipe is 80 columns wide); only the reason wraps.
    for i, column in enumerate(("rollout", "service", "version", "state", "outcome")):
        table.add_column(column, no_wrap=True, min_width=max((len(c[i]) for c in cells), default=len(column)))
    table.add_column("reason")
    for r, c in zip(rows, cells):
        table.add_row(*c, (r["reason"] or "")[:80])
    out_console.print(table)


def _print_summary(s: dict) -> None:
    from guardrail.cli import out_console

    colour = {"promoted": "green", "rolled_back": "yellow", "halted": "yellow"}.get(s["outcome"] or "", "red")
    out_console.print(f"\n[bold]{s['service']} {s['version']}[/bold] (rollout {s['rollout_id']}): "
                      f"[bold {colour}]{s['outcome'] or s['state']}[/]" + (f" — {s['reason']}" if s["reason"] else ""))
    table = Table("wave", "region", "deployed", "rolled back", "verdict", box=None)
    for wave in s["waves"]:
        for r in wave["regions"]:
            table.add_row(wave["name"], r["region"], r["deployed_at"] or "-", r["rolled_back_at"] or "-", r["verdict"])
    out_console.print(table)
    for f in s["failing_checks"]:
        out_console.print(f"[red]✗ {f['region']} {f['check']}[/red]: {f.get('reason')}"
                          + (f"\n    query: {f['query']}" if f.get("query") else ""), highlight=False)
    for notice in s.get("notices") or []:
        out_console.print(f"[yellow]![/yellow] {escape(notice)}", highlight=False)
    if s.get("incident"):
        out_console.print(f"incident {s['incident']['id']}: {s['incident']['status']}")
    out_console.print(f"[dim]details: guardrail status {s['rollout_id']}[/dim]")


def register(app: typer.Typer) -> None:
    for command in (rollout, resume, status, history, abort, pause, approve, unlock):
        app.command()(command)

"""Commands for release engineers: rollout, resume, status, history, abort, pause,
approve, unlock."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Callable

import typer
from rich.markup import escape
from rich.table import Table

from guardrail.errors import ExitCode, UsageError
from guardrail.cli.options import JsonOption, Output, OutputOption, StateOption, emit, state_path, wants_json
from guardrail.cli.report_commands import JunitOption, ReportOption, publish

IdArgument = Annotated[str, typer.Argument(help="rollout id (a unique prefix is enough)", show_default=False)]


def _guardrail(state: Path | None, progress: bool, *, existing: bool = False, machine: bool = False):
    """The library over the state file; ``existing``: refuse a state file that is not
    there (opening it would create an empty one, and a mistyped path would read as
    "no rollouts")."""
    from guardrail.api import Guardrail
    from guardrail.plugin.manager import get_plugin_manager
    from guardrail.cli import out_console
    from guardrail.cli.progress import Progress

    path = state_path(state)
    if existing and not path.exists():
        raise UsageError(f"no state file at {path}: pass --state (or set $GUARDRAIL_STATE) to where rollouts are kept")
    from guardrail.cli import err_console

    # With --output json the progress goes to stderr: a CI log shows it, stdout stays one document.
    listener = Progress(err_console if machine else out_console) if progress else None
    pm = get_plugin_manager(extra_plugins=[listener] if listener else [])
    return Guardrail(path, pm=pm), listener


def _finish(api, result, output: Output, listener, report: Path | None = None, junit: Path | None = None) -> None:
    from guardrail.cli import out_console

    if listener is not None:
        listener.close()
    summary = api.status(result.rollout_id)
    if output is Output.json:
        emit(summary, exit_code=int(result.exit_code))
    else:
        _print_summary(summary, api.state_path)
        if result.exit_code == ExitCode.ROLLBACK_FAILED:
            out_console.print("[bold red]A PERSON IS NEEDED NOW[/bold red]: the system did not return to health.")
    publish(api.store, result.rollout_id, html=report, junit=junit, machine_output=output is Output.json)
    raise typer.Exit(int(result.exit_code))


def _run(state: Path | None, output: Output, call: Callable[[Any], Any], report: Path | None = None,
         junit: Path | None = None) -> None:
    api, listener = _guardrail(state, progress=True, machine=output is Output.json)
    try:
        result = call(api)
    finally:
        if listener is not None:
            listener.close()
    _finish(api, result, output, listener, report, junit)


def rollout(
    plan: Annotated[Path, typer.Argument(help="the rollout plan (kind: Rollout)", show_default=False)],
    state: StateOption = None,
    output: OutputOption = Output.text,
    as_json: JsonOption = False,
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
    output = Output.json if wants_json(output, as_json) else output
    _run(state, output, lambda api: api.rollout(plan, override_window=override_window, clock_start=clock_start),
         report, junit)


def resume(rollout_id: IdArgument, state: StateOption = None, output: OutputOption = Output.text,
           as_json: JsonOption = False, report: ReportOption = None, junit: JunitOption = None,
           override_window: Annotated[str | None, typer.Option(
               "--override-window", help="deploy inside the change freeze in force now; the reason is recorded")]
           = None) -> None:
    """Continue a rollout that was halted, paused, or killed."""
    output = Output.json if wants_json(output, as_json) else output
    _run(state, output, lambda api: api.resume(rollout_id, override_window=override_window), report, junit)


def abort(rollout_id: IdArgument, state: StateOption = None, output: OutputOption = Output.text,
          as_json: JsonOption = False, reason: Annotated[str, typer.Option(help="recorded with the rollout")] = "aborted by a person",
          report: ReportOption = None, junit: JunitOption = None) -> None:
    """Roll back every region that runs the new version.

    If another process is running the rollout, it is asked to roll back at its next
    evaluation and reports the outcome itself; this command then exits 0.
    """
    from guardrail.cli import out_console

    output = Output.json if wants_json(output, as_json) else output
    api, _ = _guardrail(state, progress=False, existing=True)
    try:
        row = api.store.rollout(rollout_id)
        if api.abort_requested_of_running(row["id"], reason):
            holder = (api.store.lock(row["service"]) or {}).get("holder", "another process")
            if output is Output.json:
                emit({"rollout_id": row["id"], "outcome": "abort_requested",
                      "state": api.store.rollout(row["id"])["state"], "holder": holder})
            else:
                out_console.print(f"abort requested: {holder} rolls rollout {row['id']} back at its next evaluation;"
                                  f" follow it with `guardrail status {row['id']}`")
            return
    finally:
        api.close()
    _run(state, output, lambda api: api.abort(rollout_id, reason), report, junit)


def approve(rollout_id: IdArgument, state: StateOption = None, output: OutputOption = Output.text,
            as_json: JsonOption = False, wave: Annotated[str | None, typer.Option(help="the wave to approve (default: the one waiting)")] = None,
            report: ReportOption = None, junit: JunitOption = None) -> None:
    """Approve a wave that declares approval: manual, and continue the rollout."""

    def call(api):
        result = api.approve(rollout_id, wave)
        return result if result is not None else api._result(api.store.rollout(rollout_id)["id"])

    _guardrail(state, progress=False, existing=True)[0].close()
    _run(state, Output.json if wants_json(output, as_json) else output, call, report, junit)


def pause(rollout_id: IdArgument, state: StateOption = None,
          reason: Annotated[str, typer.Option(help="recorded with the rollout")] = "paused by a person",
          output: OutputOption = Output.text, as_json: JsonOption = False) -> None:
    """Ask a running rollout to halt at its next evaluation (exit 3 there)."""
    from guardrail.cli import out_console

    api, _ = _guardrail(state, progress=False, existing=True)
    api.pause(rollout_id, reason)
    if wants_json(output, as_json):
        row = api.store.rollout(rollout_id)
        emit({"rollout_id": row["id"], "outcome": "pause_requested", "state": row["state"]})
        return
    out_console.print(f"pause requested for {rollout_id}; `guardrail resume {rollout_id}` continues it")


def unlock(service: Annotated[str, typer.Argument(help="the service whose lock to free")],
           state: StateOption = None, output: OutputOption = Output.text, as_json: JsonOption = False) -> None:
    """Free a service's lock left by a dead process or a halted rollout."""
    from guardrail.cli import out_console

    api, _ = _guardrail(state, progress=False, existing=True)
    lock = api.unlock(service)
    if wants_json(output, as_json):
        emit({"service": service, "outcome": "not_locked" if lock is None else "unlocked",
              "rollout_id": (lock or {}).get("rollout_id"), "holder": (lock or {}).get("holder")})
    elif lock is None:
        out_console.print(f"{service} was not locked")
    else:
        out_console.print(f"unlocked {service} (was held by rollout {lock['rollout_id']}, {lock['holder']})")


def status(rollout_id: Annotated[str | None, typer.Argument(help="rollout id; default: the latest")] = None,
           state: StateOption = None, output: OutputOption = Output.text, as_json: JsonOption = False,
           watch: Annotated[bool, typer.Option(
               "--watch", "-w", help="follow it live from the store until it ends (exit: its outcome's code)")] = False,
           interval: Annotated[float, typer.Option(help="with --watch: seconds between two reads", min=0.1)] = 2.0,
           ) -> None:
    """Show a rollout: regions, verdicts, failing checks, incident."""
    api, _ = _guardrail(state, progress=False, existing=True)
    if watch:
        _watch(api, rollout_id, interval, wants_json(output, as_json))
        return
    summary = api.status(rollout_id)
    if wants_json(output, as_json):
        emit(summary)
    else:
        _print_summary(summary, api.state_path)


def history(state: StateOption = None, service: Annotated[str | None, typer.Option(help="only this service")] = None,
            output: OutputOption = Output.text, as_json: JsonOption = False,
            limit: Annotated[int, typer.Option(help="how many rollouts")] = 20) -> None:
    """List past rollouts, newest first."""
    from guardrail.state.states import outcome_of
    from guardrail.text import iso
    from guardrail.cli import out_console

    api, _ = _guardrail(state, progress=False, existing=True)
    rows = api.history(service, limit)
    if wants_json(output, as_json):
        keep = ("service", "version", "previous", "state", "reason", "clock")
        emit({"outcome": "listed", "rollouts": [
            {"rollout_id": r["id"], **{k: r[k] for k in keep}, "outcome": outcome_of(r["state"]),
             "started_at": iso(r["clock_start"]), "id": r["id"]} for r in rows]})
        return
    # One column for where a rollout stands: its outcome once it ended (derived from the
    # state, as everywhere), else the state it is in. Ids and services are what people
    # copy into the next command: never cut; the reason gives way, one line per rollout
    # (`guardrail status ID` tells it whole), then the version.
    from guardrail.cli.tables import fitted

    cells = [(r["id"], r["service"], r["version"], outcome_of(r["state"]) or r["state"]) for r in rows]
    table = fitted(out_console, ("rollout", "service", "version", "state"), cells, "reason",
                   [r["reason"] or "" for r in rows], drop_first=("version",))
    out_console.print(table)


def _print_summary(s: dict, state: Path | None = None) -> None:
    from guardrail.cli import out_console

    from guardrail.state.states import label

    colour = {"promoted": "green", "rolled_back": "yellow", "halted": "yellow"}.get(s["outcome"] or "", "red")
    colour = colour if s["outcome"] else "cyan"
    out_console.print(f"\n[bold]{s['service']} {s['version']}[/bold] (rollout {s['rollout_id']}): "
                      f"[bold {colour}]{escape(label(s['state'], s['reason']))}[/]")
    day = (s.get("started_at") or "")[:10]
    out_console.print(f"[dim]started {escape((s.get('started_at') or '-').replace('T', ' '))}; "
                      f"times below are UTC[/dim]")
    table = Table(box=None)
    for column in ("wave", "region", "deployed", "rolled back", "verdict"):  # names and times never cut
        table.add_column(column, no_wrap=True)
    for wave in s["waves"]:
        for r in wave["regions"]:
            table.add_row(escape(wave["name"]), escape(r["region"]), _short_time(r["deployed_at"], day),
                          _short_time(r["rolled_back_at"], day), r["verdict"])
    out_console.print(table)
    for f in s["failing_checks"]:
        out_console.print(f"[red]✗ {f['region']} {f['check']}[/red]: {f.get('reason')}"
                          + (f"\n    query: {f['query']}" if f.get("query") else ""), highlight=False)
    for notice in s.get("notices") or []:
        out_console.print(f"[yellow]![/yellow] {escape(notice)}", highlight=False)
    if s.get("incident"):
        out_console.print(f"incident {s['incident']['id']}: {s['incident']['status']}")
    out_console.print(f"[dim]details: {escape(status_command(s['rollout_id'], state))}[/dim]")


def _watch(api, rollout_id: str | None, interval: float, as_json: bool) -> None:
    from guardrail.cli import err_console, out_console
    from guardrail.cli.watch import watch
    from guardrail.report.live import live_view
    from guardrail.state.states import exit_code_of

    rid = api.status(rollout_id)["rollout_id"]
    view = watch(lambda: live_view(api.store, rid), err_console if as_json else out_console, interval)
    if as_json:
        emit(api.status(rid), exit_code=exit_code_of(view["state"]) or 0)
    else:
        _print_summary(api.status(rid), api.state_path)
    raise typer.Exit(exit_code_of(view["state"]) or 0)


def _short_time(text: str | None, day: str) -> str:
    """``18:35:00`` on the rollout's first day, ``12-04 02:15:00`` after it, ``-`` for none."""
    if not text:
        return "-"
    date, _, time_of_day = text.removesuffix("Z").partition("T")
    return time_of_day if date == day else f"{date[5:]} {time_of_day}"


def status_command(rollout_id: str, state: Path | None) -> str:
    """The ``guardrail status`` command line that shows this rollout from here, as printed."""
    import shlex

    from guardrail.cli.options import default_state_path

    where = "" if state is None or state.absolute() == default_state_path().absolute() else \
        f" --state {shlex.quote(str(state))}"
    return f"guardrail status {rollout_id}{where}"


def register(app: typer.Typer) -> None:
    for command in (rollout, resume, status, history, abort, pause, approve, unlock):
        app.command()(command)

"""Commands for release engineers: rollout, resume, status, history, abort, pause,
approve, unlock."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Callable

import typer
from rich.table import Table

from guardrail.cli.console import out_console, shown
from guardrail.errors import ExitCode, UsageError
from guardrail.state.people import sentence
from guardrail.cli.options import JsonOption, Output, OutputOption, StateOption, emit, state_path, wants_json
from guardrail.cli.report_commands import JunitOption, ReportOption, publish
from guardrail.cli.temporal_options import DetachOption, NamespaceOption, TaskQueueOption, TemporalOption

IdArgument = Annotated[str, typer.Argument(help="rollout id (a unique prefix is enough)", show_default=False)]
ByOption = Annotated[str | None, typer.Option(
    "--by", help="who acts, recorded with the rollout (default: $GITHUB_ACTOR, $GITLAB_USER_LOGIN or $USER)",
    show_default=False)]
ReasonOption = Annotated[str | None, typer.Option("--reason", help="why, recorded with the rollout",
                                                  show_default=False)]
TakeOverOption = Annotated[str | None, typer.Option(
    "--take-over", help="take the service over from an interrupted, dead, halted or superseding rollout; "
                        "the reason is recorded in both rollouts", show_default=False)]


def _guardrail(state: Path | None, progress: bool, *, existing: bool = False, machine: bool = False):
    """The library over the state file; ``existing``: refuse a state file that is not
    there (opening it would create an empty one, and a mistyped path would read as
    "no rollouts")."""
    from guardrail.api import Guardrail
    from guardrail.cli.options import plugin_manager
    from guardrail.cli.progress import Progress

    from guardrail.cli.crash import watch
    from guardrail.rollout.interrupt import Interruption

    path = state_path(state)
    if existing:
        from guardrail.state.open import is_url

        if not is_url(path) and not path.exists():
            raise UsageError(f"no state file at {path}: pass --state (or set $GUARDRAIL_STATE) to where rollouts "
                             f"are kept")
    from guardrail.cli.console import err_console

    # With --output json the progress goes to stderr: a CI log shows it, stdout stays one document.
    listener = Progress(err_console if machine else out_console) if progress else None
    pm = plugin_manager()
    if listener is not None:
        pm.register(listener)
    api = Guardrail(path, pm=pm, interruption=Interruption())
    watch(api.store.redactor)  # a crash log masks the plan's secrets too
    return api, listener


def _finish(api, result, output: Output, listener, report: Path | None = None, junit: Path | None = None) -> None:

    if listener is not None:
        listener.close()
    from guardrail.cli import err_console
    from guardrail.cli.stop_text import earlier_line, stop_lines

    summary = api.status(result.rollout_id)
    console = err_console if output is Output.json else out_console
    if getattr(result, "earlier", False):
        console.print(earlier_line(summary), markup=False, highlight=False)
    if output is Output.json:
        emit(summary, exit_code=int(result.exit_code))
    else:
        _print_summary(summary, api.state_path)
        if result.exit_code == ExitCode.ROLLBACK_FAILED:
            out_console.print("[bold red]A PERSON IS NEEDED NOW[/bold red]: the system did not return to health.")
    if api.interruption is not None and api.interruption.requested and result.outcome == "halted":
        for line in stop_lines(summary, api.state_path):
            console.print(line, markup=False, highlight=False)
    publish(api.store, result.rollout_id, html=report, junit=junit, machine_output=output is Output.json)
    raise typer.Exit(int(result.exit_code))


def _run(state: Path | None, output: Output, call: Callable[[Any], Any], report: Path | None = None,
         junit: Path | None = None) -> None:
    api, listener = _guardrail(state, progress=True, machine=output is Output.json)
    try:
        with api.interruption.catch_signals():  # SIGINT/SIGTERM: stop at a safe point, halted and said
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
    take_over: TakeOverOption = None,
    by: ByOption = None,
    temporal: TemporalOption = None,
    namespace: NamespaceOption = None,
    task_queue: TaskQueueOption = None,
    detach: DetachOption = False,
) -> None:
    """Deploy a change wave by wave, bake, and roll back on failure.

    Exit codes: 0 promoted, 1 rolled back, 2 invalid input, 3 halted (also when
    interrupted by SIGINT/SIGTERM), 4 rollback failed (a person is needed), 5 locked by
    another rollout, 70 internal error (a person is needed).
    """
    from guardrail.cli.check_command import parse_time

    clock_start = parse_time(start_at, "--start-at")
    output = Output.json if wants_json(output, as_json) else output
    if temporal:  # submitted to Temporal workers, followed from here
        from guardrail.cli.temporal_commands import rollout_on_temporal

        return rollout_on_temporal(plan, state, output, temporal, namespace, task_queue, detach, override_window,
                                   clock_start, report, junit, by, take_over)
    _run(state, output, lambda api: api.rollout(plan, override_window=override_window, clock_start=clock_start,
                                                by=by, take_over=take_over), report, junit)


def resume(rollout_id: IdArgument, state: StateOption = None, output: OutputOption = Output.text,
           as_json: JsonOption = False, report: ReportOption = None, junit: JunitOption = None,
           by: ByOption = None, reason: ReasonOption = None, take_over: TakeOverOption = None,
           override_window: Annotated[str | None, typer.Option(
               "--override-window", help="deploy inside the change freeze in force now; the reason is recorded")]
           = None, temporal: TemporalOption = None) -> None:
    """Continue a rollout that was halted, paused, interrupted or killed (on Temporal workers
    with --temporal).

    A finished rollout is not run again: its result is shown with its exit code. A
    superseded rollout (another rollout took its lock over) is refused (exit 5) unless
    --take-over "reason".
    """
    output = Output.json if wants_json(output, as_json) else output
    if temporal:
        from guardrail.cli.temporal_commands import resume_on_temporal

        return _run(state, output, lambda api: resume_on_temporal(
            api, rollout_id, output, temporal, by=by, reason=reason, take_over=take_over,
            override_window=override_window), report, junit)
    _run(state, output, lambda api: api.resume(rollout_id, by=by, reason=reason, take_over=take_over,
                                               override_window=override_window), report, junit)


def abort(rollout_id: IdArgument, state: StateOption = None, output: OutputOption = Output.text,
          as_json: JsonOption = False,
          reason: Annotated[str, typer.Option(help="recorded with the rollout")] = "aborted by a person",
          report: ReportOption = None, junit: JunitOption = None, by: ByOption = None,
          detach: Annotated[bool, typer.Option(
              "--detach", help="only record the request and return at once: the process running the rollout, "
                               "or a later `guardrail resume`, carries it out")] = False,
          temporal: TemporalOption = None) -> None:
    """Roll back every region that runs the new version (on Temporal workers with --temporal).

    If another process is running the rollout, it is asked to roll back at its next
    evaluation and reports the outcome itself; this command then exits 0 (so it does
    with --detach).
    """
    output = Output.json if wants_json(output, as_json) else output
    if temporal:  # the rollback runs on the workers: the attempt running it, or a new run
        from guardrail.cli.temporal_commands import abort_on_temporal

        return _run(state, output, lambda api: abort_on_temporal(api, rollout_id, reason, output, temporal, by),
                    report, junit)
    api, _ = _guardrail(state, progress=False, existing=True)
    try:
        row = api.store.rollout(rollout_id)
        running = api.abort_requested_of_running(row["id"], reason, by=by)
        if running or detach:
            holder = (api.store.lock(row["service"]) or {}).get("holder", "another process") if running else None
            if output is Output.json:
                emit({"rollout_id": row["id"], "outcome": "abort_requested",
                      "state": api.store.rollout(row["id"])["state"], "holder": holder})
            elif running:
                out_console.print(f"abort requested: {holder} rolls rollout {row['id']} back at its next evaluation;"
                                  f" follow it with `guardrail status {row['id']}`", markup=False)
            else:
                out_console.print(f"abort recorded for rollout {row['id']}; no process runs it now:"
                                  f" `{_command('resume', row['id'], state)}` carries it out", markup=False)
            return
        rid = row["id"]
    finally:
        api.close()
    _run(state, output, lambda api: api.resume(rid, allow_changed_plan=True, record=False), report, junit)


def rollback(rollout_id: IdArgument, state: StateOption = None, output: OutputOption = Output.text,
             as_json: JsonOption = False, reason: Annotated[str, typer.Option(help="recorded with the rollout")] = "rolled back by a person",
             by: ByOption = None, report: ReportOption = None, junit: JunitOption = None) -> None:
    """Roll a promoted release back: every region to its previous version, in reverse
    wave order, with the incident and the recovery verification of a failure.

    Exit codes as for rollout: 1 rolled back and recovered, 4 rollback failed. Run it
    again to see the result; it never rolls a region back twice.
    """
    _run(state, Output.json if wants_json(output, as_json) else output,
         lambda api: api.rollback(rollout_id, reason, by=by), report, junit)


def approve(rollout_id: IdArgument, state: StateOption = None, output: OutputOption = Output.text,
            as_json: JsonOption = False,
            wave: Annotated[str | None, typer.Option(help="the wave to approve (default: the one waiting)")] = None,
            report: ReportOption = None, junit: JunitOption = None, by: ByOption = None,
            reason: ReasonOption = None, temporal: TemporalOption = None) -> None:
    """Approve a wave that declares approval: manual, and continue the rollout (on Temporal
    workers with --temporal)."""
    output = Output.json if wants_json(output, as_json) else output

    def call(api):
        if temporal and api.store.rollout(rollout_id)["state"] == "halted":
            from guardrail.cli.temporal_commands import resume_on_temporal

            api.approve(rollout_id, wave, resume=False, by=by, reason=reason)
            return resume_on_temporal(api, rollout_id, output, temporal, by=by, record=False)
        result = api.approve(rollout_id, wave, by=by, reason=reason)
        return result if result is not None else api.result(api.store.rollout(rollout_id)["id"])

    _guardrail(state, progress=False, existing=True)[0].close()
    _run(state, output, call, report, junit)


def pause(rollout_id: IdArgument, state: StateOption = None,
          reason: Annotated[str, typer.Option(help="recorded with the rollout")] = "paused by a person",
          by: ByOption = None, output: OutputOption = Output.text, as_json: JsonOption = False) -> None:
    """Ask a running rollout to halt at its next evaluation (exit 3 there)."""

    api, _ = _guardrail(state, progress=False, existing=True)
    api.pause(rollout_id, reason, by=by)
    if wants_json(output, as_json):
        row = api.store.rollout(rollout_id)
        emit({"rollout_id": row["id"], "outcome": "pause_requested", "state": row["state"]})
        return
    out_console.print(f"pause requested for {rollout_id}; `guardrail resume {rollout_id}` continues it")


def unlock(service: Annotated[str, typer.Argument(help="the service whose lock to free")],
           state: StateOption = None, by: ByOption = None, reason: ReasonOption = None,
           output: OutputOption = Output.text, as_json: JsonOption = False) -> None:
    """Free a service's lock left by a dead process or a halted rollout."""

    api, _ = _guardrail(state, progress=False, existing=True)
    lock = api.unlock(service, by=by, reason=reason)
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


def _command(verb: str, rollout_id: str, state: Path | str | None) -> str:
    from guardrail.cli.stop_text import command

    return command(verb, rollout_id, state_path(state) if state is None or isinstance(state, str) else state)


def _print_summary(s: dict, state: Path | str | None = None) -> None:

    from guardrail.state.states import label

    colour = {"promoted": "green", "rolled_back": "yellow", "halted": "yellow"}.get(s["outcome"] or "", "red")
    colour = colour if s["outcome"] else "cyan"
    out_console.print(f"\n[bold]{shown(s['service'])} {shown(s['version'])}[/bold] (rollout {shown(s['rollout_id'])}): "
                      f"[bold {colour}]{shown(label(s['state'], s['reason']))}[/]")
    day = (s.get("started_at") or "")[:10]
    out_console.print(f"[dim]started {shown((s.get('started_at') or '-').replace('T', ' '))}; "
                      f"times below are UTC[/dim]")
    table = Table(box=None)
    for column in ("wave", "region", "deployed", "rolled back", "verdict"):  # names and times never cut
        table.add_column(column, no_wrap=True)
    for wave in s["waves"]:
        for r in wave["regions"]:
            table.add_row(shown(wave["name"]), shown(r["region"]), _short_time(r["deployed_at"], day),
                          _short_time(r["rolled_back_at"], day), shown(r["verdict"]))
    out_console.print(table)
    for wave in s["waves"]:
        for r in wave["regions"]:
            for c in r.get("coverage") or []:
                if c.get("applies", True) and not c.get("complete"):
                    out_console.print(f"[yellow]…[/yellow] {shown(c['text'])}", highlight=False,
                                      soft_wrap=False)  # wrapped: a CI log is 80 columns wide
    for f in s["failing_checks"]:
        out_console.print(f"[red]✗ {shown(f['region'])} {shown(f['check'])}[/red]: {shown(f.get('reason'))}"
                          + (f"\n    query: {shown(f['query'])}" if f.get("query") else ""), highlight=False)
    for w in s.get("warnings") or []:
        out_console.print(f"[yellow]⚠ {shown(w['region'])} {shown(w['check'])}[/yellow] (warning, never failing): "
                          f"{shown(w.get('reason'))}", highlight=False)
    for notice in s.get("notices") or []:
        out_console.print(f"[yellow]![/yellow] {shown(notice)}", highlight=False)
    for entry in s.get("people") or []:
        out_console.print(f"[dim]person:[/dim] {shown(sentence(entry))}", highlight=False)
    if s.get("driver"):
        out_console.print(f"[bold]now:[/bold] {shown(s['driver']['story'])}", highlight=False)
    if s.get("incident"):
        out_console.print(f"incident {shown(s['incident']['id'])}: {shown(s['incident']['status'])}")
    out_console.print(f"[dim]details: {shown(status_command(s['rollout_id'], state))}[/dim]")


def _watch(api, rollout_id: str | None, interval: float, as_json: bool) -> None:
    from guardrail.cli.console import err_console
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
    return shown(time_of_day if date == day else f"{date[5:]} {time_of_day}")


def status_command(rollout_id: str, state: Path | str | None) -> str:
    """The ``guardrail status`` command line that shows this rollout from here, as printed."""
    return _command("status", rollout_id, state)


def register(app: typer.Typer) -> None:
    for command in (rollout, resume, status, history, abort, rollback, pause, approve, unlock):
        app.command()(command)

"""``guardrail incidents list|show|flush``: the incidents in a state file and their delivery.

``flush`` sends what the sinks did not take (down, rate-limiting, refused) now, from
this process, with the ``${env:...}`` secrets of this environment. Exit 0 when nothing
is left to deliver, 1 when something stays spooled or was refused.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from guardrail.cli.console import out_console, shown
from guardrail.cli.options import JsonOption, Output, OutputOption, StateOption, emit, state_path, wants_json

incidents_app = typer.Typer(help="Incidents of failed rollouts: list, show, flush the delivery spool.",
                            no_args_is_help=True)
IncidentArgument = Annotated[str, typer.Argument(help="incident id (INC-...) or rollout id", show_default=False)]


def _api(state):
    from guardrail.api import Guardrail
    from guardrail.cli.options import plugin_manager
    from guardrail.errors import UsageError
    from guardrail.state.open import is_url

    path = state_path(state)
    if not is_url(path) and not path.exists():  # opening it would create an empty state file
        raise UsageError(f"no state file at {path}: pass --state (or set $GUARDRAIL_STATE) to where rollouts are kept")
    return Guardrail(path, pm=plugin_manager())


@incidents_app.command("list")
def list_incidents(state: StateOption = None, output: OutputOption = Output.text, as_json: JsonOption = False,
                   limit: Annotated[int, typer.Option(help="how many incidents")] = 20) -> None:
    """List incidents, newest first, with how many updates are still spooled."""

    api = _api(state)
    pending = {}
    for row in api.store.deliveries("pending"):
        pending[row["incident_id"]] = pending.get(row["incident_id"], 0) + 1
    rows = [{"id": i["id"], "rollout_id": i.get("rollout_id"), "status": i["status"], "service": i["service"], "version": i["change"]["version"],
             "severity": i.get("severity"), "opened_at": i.get("opened_at"), "updated_at": i.get("at"),
             "spooled": pending.get(i["id"], 0), "title": i["title"]} for i in api.store.incidents(limit)]
    if wants_json(output, as_json):
        emit({"outcome": "listed", "incidents": rows})
        return
    from guardrail.cli.tables import fitted

    # Ids are what people copy into the next command: never cut; the title gives way first.
    cells = [(r["id"], r["status"], r["service"], r["version"], (r["opened_at"] or "-").replace("T", " ")[5:16],
              str(r["spooled"])) for r in rows]
    table = fitted(out_console, ("incident", "status", "service", "version", "opened", "spooled"), cells, "title",
                   [r["title"] for r in rows], drop_first=("spooled", "version", "opened"))
    out_console.print(table)


@incidents_app.command("show")
def show(incident: IncidentArgument, state: StateOption = None, output: OutputOption = Output.text,
         as_json: JsonOption = False) -> None:
    """Show an incident: what it says, its timeline, and each sink's delivery."""
    from guardrail.plugin.incident_text import plain_text

    api = _api(state)
    doc = api.store.incident(incident)
    deliveries = [{"sink": d["sink"], "status": d["incident_status"],
                   "revision": d["payload"].get("revision"), "delivery": d["status"], "attempts": d["attempts"],
                   "error": d["last_error"]} for d in api.store.deliveries(incident_id=doc["id"])]
    if wants_json(output, as_json):
        emit({"outcome": "shown", "rollout_id": doc.get("rollout_id"), "incident": doc, "deliveries": deliveries})
        return
    out_console.print("\n".join(shown(line) for line in plain_text(doc).split("\n")), highlight=False)
    out_console.print("\n[bold]timeline[/bold]")
    for entry in doc.get("timeline") or []:
        out_console.print(f"  {shown(entry.get('at'))}  {shown(entry.get('status'))}" + (f"  {shown(entry['note'])}"
                                                                           if entry.get("note") else ""))
    table = Table("sink", "update", "delivery", "attempts", "error", box=None, title="deliveries", title_justify="left")
    for d in deliveries:
        table.add_row(shown(d["sink"]), shown(f"{d['revision']} {d['status']}"), shown(d["delivery"]), str(d["attempts"]),
                      shown(d["error"] or ""))
    out_console.print(table)


@incidents_app.command("flush")
def flush(incident: Annotated[str | None, typer.Argument(help="only this incident (default: all)")] = None,
          state: StateOption = None, output: OutputOption = Output.text, as_json: JsonOption = False,
          rejected: Annotated[bool, typer.Option("--rejected", help="also retry updates a service refused")] = False,
          ) -> None:
    """Deliver spooled incident updates now (exit 1 if some are still not delivered)."""
    from guardrail.incidents.delivery import flush as flush_spool

    api = _api(state)
    results = flush_spool(api.store, api.pm.registry, incident=incident, rejected=rejected)
    left = [d for d in api.store.deliveries() if d["status"] != "delivered"
            and (incident is None or incident in (d["incident_id"], d["payload"].get("rollout_id")))]
    if wants_json(output, as_json):
        emit({"outcome": "undelivered" if left else "delivered", "results": [r.as_dict() for r in results],
              "left": len(left)}, exit_code=1 if left else 0)
    else:
        for r in results:
            colour = "green" if r.ok else "yellow" if r.outcome == "busy" else "red"
            outcome = f"[{colour}]{shown(r.outcome)}[/{colour}]" + ("" if r.ok else f": {shown(r.error or '')}")
            out_console.print(f"{shown(r.incident_id)} {shown(r.status)} (update {r.revision}) → {shown(r.sink)}: {outcome}")
        out_console.print(f"{len(results)} attempted, {len(left)} not delivered" if results or left
                          else "nothing to deliver")
    raise typer.Exit(1 if left else 0)


def register(app: typer.Typer) -> None:
    app.add_typer(incidents_app, name="incidents")

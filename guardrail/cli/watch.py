"""``guardrail status ID --watch``: the live view (``guardrail.report.live``) redrawn
until the rollout ends, in a terminal; elsewhere, a snapshot printed whenever it changes."""

from __future__ import annotations

import time
from typing import Any, Callable

from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from guardrail.cli.console import shown
from guardrail.language.types import format_duration
from guardrail.text import number, printable

STYLE = {"pass": "green", "fail": "bold red", "inconclusive": "yellow", "holding": "yellow", "warn": "yellow"}


def render(view: dict[str, Any]) -> Group:
    """The view as sections: headline, waves, bake, checks, last events."""
    from guardrail.state.states import label

    parts: list[Any] = [Text.from_markup(
        f"[bold]{shown(view['service'])} {shown(view['version'])}[/bold] (rollout {shown(view['rollout_id'])}): "
        f"[bold]{shown(label(view['state'], view['reason']))}[/bold]  [dim]{view['now']}[/dim]")]
    waves = Table(box=None, pad_edge=False, padding=(0, 2, 0, 0))
    for column in ("wave", "region", "deployed", "rolled back", "verdict"):
        waves.add_column(column, no_wrap=True)
    for wave in view["waves"]:
        for r in wave["regions"]:
            waves.add_row(shown(wave["name"]), shown(r["region"]), (r["deployed_at"] or "-")[11:19] or "-",
                          (r["rolled_back_at"] or "-")[11:19] or "-", shown(r["verdict"]))
    parts.append(waves)
    bake = view.get("bake")
    if bake:
        status = "done" if bake["done"] else f"{format_duration(round(bake['left']))} left"
        parts.append(Text(f"bake of wave {printable(bake['wave'])}: {format_duration(int(bake['covered']))} of "
                          f"{format_duration(bake['length'])} covered, {status}"))
    if view["checks"]:
        checks = Table(box=None, pad_edge=False, padding=(0, 2, 0, 0))
        for column in ("region", "check", "value", "threshold", "verdict"):
            checks.add_column(column, no_wrap=column in ("region", "check"))
        for c in view["checks"]:
            verdict = "holding" if c["pending"] and c["status"] == "pass" else c["status"]
            checks.add_row(shown(c["region"]), shown(f"{c['policy']}/{c['check']}"), number(c["value"]),
                           shown(c["comparison"] or number(c["threshold"])), Text(verdict, style=STYLE.get(verdict, "")))
        parts.append(checks)
    for e in view["events"]:
        parts.append(Text(printable(f"{(e['at'] or '')[11:19]} {e['text']}"), style="dim"))
    return Group(*parts)


def watch(read: Callable[[], dict[str, Any]], console: Console, interval: float) -> dict[str, Any]:
    """Redraw ``read()`` every ``interval`` seconds until the rollout ends; return the last view."""
    from rich.live import Live

    view = read()
    if console.is_terminal:
        with Live(render(view), console=console, auto_refresh=False) as live:
            while not view["ended"]:
                time.sleep(interval)
                view = read()
                live.update(render(view), refresh=True)
        return view
    last = None
    while True:
        key = (view["state"], (view.get("bake") or {}).get("left"), len(view["events"]),
               tuple(e["text"] for e in view["events"]))
        if key != last:
            console.print(render(view))
            console.print()
            last = key
        if view["ended"]:
            return view
        time.sleep(interval)
        view = read()

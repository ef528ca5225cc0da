"""``guardrail status ID --watch``: the live view (``guardrail.report.live``) redrawn
until the rollout ends, in a terminal; elsewhere, a snapshot printed whenever it changes."""

from __future__ import annotations

import time
from typing import Any, Callable

from rich.console import Console, Group
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from guardrail.language.types import format_duration

STYLE = {"pass": "green", "fail": "bold red", "inconclusive": "yellow", "holding": "yellow"}


def _num(value: Any) -> str:
    return "-" if value is None else f"{value:.4g}"


def render(view: dict[str, Any]) -> Group:
    """The view as sections: headline, waves, bake, checks, last events."""
    from guardrail.state.states import label

    parts: list[Any] = [Text.from_markup(
        f"[bold]{escape(view['service'])} {escape(view['version'])}[/bold] (rollout {view['rollout_id']}): "
        f"[bold]{escape(label(view['state'], view['reason']))}[/bold]  [dim]{view['now']}[/dim]")]
    waves = Table(box=None, pad_edge=False, padding=(0, 2, 0, 0))
    for column in ("wave", "region", "deployed", "rolled back", "verdict"):
        waves.add_column(column, no_wrap=True)
    for wave in view["waves"]:
        for r in wave["regions"]:
            waves.add_row(escape(wave["name"]), escape(r["region"]), (r["deployed_at"] or "-")[11:19] or "-",
                          (r["rolled_back_at"] or "-")[11:19] or "-", r["verdict"])
    parts.append(waves)
    bake = view.get("bake")
    if bake:
        status = "done" if bake["done"] else f"{format_duration(round(bake['left']))} left"
        parts.append(Text(f"bake of wave {bake['wave']}: {format_duration(int(bake['covered']))} of "
                          f"{format_duration(bake['length'])} covered, {status}"))
    if view["checks"]:
        checks = Table(box=None, pad_edge=False, padding=(0, 2, 0, 0))
        for column in ("region", "check", "value", "threshold", "verdict"):
            checks.add_column(column, no_wrap=column in ("region", "check"))
        for c in view["checks"]:
            verdict = "holding" if c["pending"] and c["status"] == "pass" else c["status"]
            checks.add_row(escape(c["region"]), escape(f"{c['policy']}/{c['check']}"), _num(c["value"]),
                           escape(c["comparison"] or _num(c["threshold"])), Text(verdict, style=STYLE.get(verdict, "")))
        parts.append(checks)
    for e in view["events"]:
        parts.append(Text(f"{(e['at'] or '')[11:19]} {e['text']}", style="dim"))
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
    shown = None
    while True:
        key = (view["state"], (view.get("bake") or {}).get("left"), len(view["events"]),
               tuple(e["text"] for e in view["events"]))
        if key != shown:
            console.print(render(view))
            console.print()
            shown = key
        if view["ended"]:
            return view
        time.sleep(interval)
        view = read()

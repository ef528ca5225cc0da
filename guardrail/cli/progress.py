"""Terminal progress: a plugin that listens to ``guardrail_on_event``.

Transitions print as lines (fine for CI logs); in a terminal the current bake is
also shown live: wave, time left, each check's latest value against its threshold.
Elsewhere (a CI log, a pipe) the bake prints a line at least once a minute of the
rollout's clock, so a job log never goes quiet for the length of a bake. With
``--output json`` all of it goes to stderr: stdout holds the one JSON document.
"""

from __future__ import annotations

from datetime import datetime, timezone

from rich.console import Console
from rich.live import Live
from rich.table import Table

from guardrail.cli.console import shown
from guardrail import hookimpl
from guardrail.report.event_text import describe
from guardrail.language.types import format_duration
from guardrail.text import number

_STYLE = {"pass": "green", "fail": "bold red", "inconclusive": "yellow", "warn": "yellow"}


def _clock(at: float) -> str:
    return datetime.fromtimestamp(at, timezone.utc).strftime("%H:%M:%S")



class Progress:
    BAKE_LINE_EVERY = 60.0
    """Seconds of the rollout's clock between two bake lines when no live table is shown."""

    def __init__(self, console: Console):
        self.console = console
        self.live: Live | None = None
        self._last_bake_line: float | None = None

    def _line(self, at: float, text: str, style: str = "") -> None:
        if self.live is not None:
            self.live.stop()
            self.live = None
        self.console.print(f"[dim]{_clock(at)}[/dim] {shown(text)}", style=style, highlight=False)

    @hookimpl
    def guardrail_on_event(self, event: dict) -> None:
        kind, at = event["kind"], event["at"]
        if kind == "bake.tick":
            if self.console.is_terminal:
                self._live(event)
            elif self._last_bake_line is None or at - self._last_bake_line >= self.BAKE_LINE_EVERY:
                self._last_bake_line = at
                self._line(at, _bake_line(event))
            return
        if kind.startswith("state."):
            self._last_bake_line = None  # the next bake starts with a line
        text = _describe(kind, event)
        if text:
            style = "bold red" if kind in ("state.failed", "state.rollback_failed", "region.deploy_failed",
                                          "region.rollback_failed", "state.aborted") else ""
            style = "bold green" if kind in ("state.promoted",) else style
            self._line(at, text, style)

    def _live(self, event: dict) -> None:
        table = Table(title=f"wave {event['wave']}: bake, {format_duration(event['remaining'])} left",
                      box=None, title_justify="left")
        for column in ("region", "check", "value", "threshold", "verdict"):
            table.add_column(column)
        for c in event["checks"]:
            verdict = c["status"] + (" (holding)" if c.get("pending") else "")
            table.add_row(shown(c["region"]), shown(c["check"]), number(c["value"]), number(c["threshold"]),
                          f"[{_STYLE.get(c['status'], '')}]{verdict}[/]")
        if self.live is None:
            self.live = Live(table, console=self.console, auto_refresh=False, transient=True)
            self.live.start()
        self.live.update(table, refresh=True)

    def close(self) -> None:
        if self.live is not None:
            self.live.stop()


def _bake_line(e: dict) -> str:
    """``wave canary: baking, 12m left; 4 checks: 3 pass, 1 holding (r3 stalled-sends)``."""
    counts: dict[str, int] = {}
    notable = []
    for c in e["checks"]:
        status = "holding" if c.get("pending") and c["status"] == "pass" else c["status"]
        counts[status] = counts.get(status, 0) + 1
        if status != "pass":
            notable.append(f"{c['region']} {c['check']}")
    tally = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
    more = f" ({', '.join(notable[:3])}{', ...' if len(notable) > 3 else ''})" if notable else ""
    return (f"  wave {e['wave']}: baking, {format_duration(e['remaining'])} left; "
            f"{len(e['checks'])} checks: {tally or 'none yet'}{more}")


def _describe(kind: str, e: dict) -> str | None:
    """The event's sentence (shared with the report), indented under its wave for
    region steps and actions."""
    text = describe(e)
    if text is None:
        return None
    if kind == "rollout.started":
        return f"rollout {e['rollout_id']}: " + text.removeprefix("started: ")
    return "  " + text if kind.startswith(("region.", "action.")) else text

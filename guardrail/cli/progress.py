"""Terminal progress: a plugin that listens to ``guardrail_on_event``.

Transitions print as lines (fine for CI logs); in a terminal the current bake is
also shown live: wave, time left, each check's latest value against its threshold.
"""

from __future__ import annotations

from datetime import datetime, timezone

from rich.console import Console
from rich.live import Live
from rich.markup import escape
from rich.table import Table

from .. import hookimpl
from ..model.types import format_duration

_STYLE = {"pass": "green", "fail": "bold red", "inconclusive": "yellow"}


def _clock(at: float) -> str:
    return datetime.fromtimestamp(at, timezone.utc).strftime("%H:%M:%S")


def _num(value) -> str:
    return "-" if value is None else f"{value:.4g}"


class Progress:
    def __init__(self, console: Console):
        self.console = console
        self.live: Live | None = None

    def _line(self, at: float, text: str, style: str = "") -> None:
        if self.live is not None:
            self.live.stop()
            self.live = None
        self.console.print(f"[dim]{_clock(at)}[/dim] {escape(text)}", style=style, highlight=False)

    @hookimpl
    def guardrail_on_event(self, event: dict) -> None:
        kind, at = event["kind"], event["at"]
        if kind == "bake.tick":
            if self.console.is_terminal:
                self._live(event)
            return
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
            table.add_row(escape(c["region"]), escape(c["check"]), _num(c["value"]), _num(c["threshold"]),
                          f"[{_STYLE.get(c['status'], '')}]{verdict}[/]")
        if self.live is None:
            self.live = Live(table, console=self.console, auto_refresh=False, transient=True)
            self.live.start()
        self.live.update(table, refresh=True)

    def close(self) -> None:
        if self.live is not None:
            self.live.stop()


def _describe(kind: str, e: dict) -> str | None:
    if kind == "rollout.started":
        change = e["change"]
        waves = " → ".join(f"{w['name']} [{', '.join(w['regions'])}]" for w in e["waves"])
        return f"rollout {e['rollout_id']}: {e['service']} {change['previous']} → {change['version']} in waves {waves}"
    if kind == "rollout.resumed":
        return f"resuming rollout {e['rollout_id']} (was {e['previous_state']})"
    if kind == "preflight":
        return "preflight: " + ("policies pass" if not e["failing"] else f"{len(e['failing'])} check(s) already fail")
    if kind == "window.overridden":
        return f"change freeze {e['window']!r} overridden: {e['reason']}"
    if kind == "state.deploying":
        return f"wave {e['wave']}: deploying {', '.join(e['regions'])}"
    if kind == "region.deployed":
        return f"  {e['region']}: deployed"
    if kind == "region.deploy_failed":
        return f"  {e['region']}: DEPLOY FAILED: {e['detail']}"
    if kind == "state.baking":
        return f"wave {e['wave']}: baking for {e['bake']}"
    if kind == "bake.passed":
        return f"wave {e['wave']}: bake passed ({', '.join(e['regions'])} healthy)"
    if kind in ("state.failed", "state.aborted"):
        lines = [f"{'ABORTED' if kind == 'state.aborted' else 'FAILED'}: {e.get('reason', '')}"]
        return "\n".join(lines)
    if kind == "state.rolling_back":
        return f"rolling back {', '.join(e['regions'])} (reverse wave order)"
    if kind == "region.rolled_back":
        return f"  {e['region']}: rolled back"
    if kind == "region.rollback_failed":
        return f"  {e['region']}: ROLLBACK FAILED: {e['detail']}"
    if kind == "action.ran":
        where = f" ({e['region']})" if e.get("region") else ""
        return f"  action {e['plugin']}{where}: {'ok' if e['ok'] else 'FAILED'} {e.get('detail') or ''}".rstrip()
    if kind in ("incident.delivered", "incident.delivery_failed"):  # from the background delivery threads
        what = "delivered" if kind == "incident.delivered" else \
            ("REFUSED: " if e.get("rejected") else "not delivered (spooled): ") + str(e.get("error"))
        return f"  incident {e['incident']} {e['status']} → {e['sink']}: {what}"
    if kind.startswith("incident."):
        sinks = ", ".join(f"{s['sink']}{'' if s['ok'] else ' (spooled: ' + s.get('error', '') + ')'}" for s in e["sinks"])
        return f"incident {e['incident']} {kind.split('.', 1)[1]} → {sinks}"
    if kind == "state.verifying_recovery":
        return f"verifying recovery of {', '.join(e['regions'])} for {e['for']}"
    if kind == "recovery.relapsed":
        return f"  recovery relapsed: {'; '.join(e['reasons'])}"
    if kind == "state.halted":
        return f"HALTED: {e.get('reason', '')}"
    if kind == "state.refused":
        return f"REFUSED: {e.get('reason', '')}"
    if kind == "state.promoted":
        return "promoted: every wave passed"
    if kind == "state.done":
        return "rolled back and recovered"
    if kind == "state.rollback_failed":
        return f"A PERSON IS NEEDED NOW: {e.get('reason', '')}"
    return None

"""``guardrail check``: a policy's checks evaluated once, in one region (``guardrail.tools.check``)."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from guardrail.cli.console import out_console
from guardrail.errors import UsageError
from guardrail.cli.options import (JsonOption, Output, OutputOption, StateOption, emit, plugin_manager, state_dir,
                                   state_path, wants_json)
from guardrail.text import number

if TYPE_CHECKING:
    from guardrail.tools.check import CheckResult

STATUS_STYLE = {"pass": "green", "fail": "bold red", "inconclusive": "yellow", "warn": "yellow"}


def parse_vars(pairs: list[str]) -> dict[str, object]:
    """``k=v`` pairs; ``k=[a, b]`` is a list (for a variable such as ``smtp_hosts``)."""
    import yaml

    out: dict[str, object] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise UsageError(f"--var {pair!r}: expected NAME=VALUE")
        text = value.strip()
        if text.startswith("[") and text.endswith("]"):
            try:
                out[name.strip()] = [str(v) for v in yaml.safe_load(text)]
                continue
            except (yaml.YAMLError, TypeError):
                raise UsageError(f"--var {pair!r}: a list looks like NAME=[a, b]") from None
        out[name.strip()] = value
    return out


def parse_time(text: str | None, option: str = "--at") -> float | None:
    """Epoch seconds, or an ISO 8601 time (UTC unless it says otherwise); ``option`` names
    the command-line option in the error."""
    if text is None:
        return None
    try:
        return float(text)
    except ValueError:
        pass
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(f"{option} {text!r}: expected an ISO time like 2024-07-04T10:00:00Z or epoch seconds") from None
    return (when if when.tzinfo else when.replace(tzinfo=timezone.utc)).timestamp()


def check(
    policy: Annotated[Path, typer.Argument(help="the policy file to evaluate")],
    region: Annotated[str, typer.Option("--region", help="the region whose {{region}} and variables fill the templates")],
    var: Annotated[list[str], typer.Option(
        "--var", help="template variable NAME=VALUE (repeatable; NAME=\\[a, b] for a list)")] = [],  # noqa: B006
    prometheus: Annotated[str | None, typer.Option("--prometheus", metavar="URL", help="where prometheus checks ask")] = None,
    plan: Annotated[Path | None, typer.Option(
        "--plan", help="take sources, region variables and control regions from this plan")] = None,
    at: Annotated[str | None, typer.Option(
        "--at", help="evaluate at this time (ISO 8601 or epoch seconds) instead of now")] = None,
    state: StateOption = None,
    output: OutputOption = Output.text,
    as_json: JsonOption = False,
) -> None:
    """Evaluate every check of POLICY once, now; exit 0 all pass, 1 a check fails, 3 inconclusive."""
    from guardrail.tools.check import check_now, exit_code  # the engine's imports: not at every command's start-up

    results = check_now(policy, region, plugin_manager().registry, variables=parse_vars(var),
                        prometheus_url=prometheus, plan_path=plan, at=parse_time(at),
                        state_dir=state_dir(state_path(state)))
    code = exit_code(results)
    if wants_json(output, as_json):
        emit({"outcome": {0: "pass", 1: "fail"}.get(code, "inconclusive"), "policy": str(policy), "region": region,
              "checks": [r.as_dict() for r in results]}, exit_code=code)
    else:
        _table(results)
    raise typer.Exit(code)


def _table(results: list[CheckResult]) -> None:
    from rich.table import Table
    from rich.text import Text

    from guardrail.text import printable

    table = Table("check", "value", "threshold", "verdict", "reason", box=None, show_edge=False,
                  title=f"{results[0].policy} in {results[0].region}" if results else None, title_justify="left")
    table.columns[0].overflow = "fold"
    for r in results:
        verdict = "skipped" if r.skipped else "collecting samples" if r.pending else r.status
        table.add_row(Text(printable(r.check)), number(r.value), number(r.threshold),
                      Text(verdict, style=STATUS_STYLE.get(r.status, "")), Text(printable(r.reason)))
    out_console.print(table)



def register(app: typer.Typer) -> None:
    app.command()(check)

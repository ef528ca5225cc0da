"""``guardrail test``, the command this plugin adds to the command line."""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from guardrail.text import printable


class Output(str, Enum):
    text = "text"
    json = "json"


def policy_test(
    paths: Annotated[list[Path], typer.Argument(help="PolicyTest files, or folders searched for them")],
    output: Annotated[Output, typer.Option("--output", "-o", help="text for people, json for pipelines "
                                                                  "(`guardrail schema output` describes it)")]
    = Output.text,
    as_json: Annotated[bool, typer.Option("--json", help="the same as --output json")] = False,
) -> None:
    """Run policy unit tests: exit 0 when every expectation holds, 1 on a mismatch, 2 on an invalid file."""
    from guardrail.plugin.manager import get_plugin_manager

    from . import run_paths

    out_console = Console(highlight=False, soft_wrap=True, emoji=False)  # values are text: no emoji codes
    results = run_paths(paths, get_plugin_manager().registry)
    if as_json or output is Output.json:
        code = 0 if all(r.ok for r in results) else 1
        _emit({"outcome": "passed" if code == 0 else "failed", "files": [
            {"path": _display(r.path), "tests": r.tests, "assertions": r.assertions, "failed": len(r.mismatches),
             "seconds": r.seconds, "mismatches": [m.render() for m in r.mismatches], "warnings": r.warnings}
            for r in results]},
            exit_code=code)
        raise typer.Exit(code)
    failed = 0
    for result in results:
        for mismatch in result.mismatches:
            out_console.print(mismatch.render(), markup=False, highlight=False)
            out_console.print()
        for warning in result.warnings:  # apart from the assertions: a warning never fails a wave
            out_console.print(f"[yellow]warning[/yellow] {escape(printable(warning))}")
        status = "[green]ok[/green]" if result.ok else "[bold red]FAIL[/bold red]"
        failed += len(result.mismatches)
        out_console.print(f"{status}  {escape(printable(_display(result.path)))}: {result.tests} test{'s' if result.tests != 1 else ''}, "
                          f"{result.assertions} assertions, {len(result.mismatches)} failed "
                          f"({result.seconds * 1000:.0f} ms)")
    files, bad = len(results), sum(not r.ok for r in results)
    summary = f"{files} file{'s' if files != 1 else ''}, {sum(r.assertions for r in results)} assertions"
    if failed:
        out_console.print(f"[bold red]{failed} assertion{'s' if failed != 1 else ''} failed[/bold red] "
                          f"in {bad} of {summary}")
        raise typer.Exit(1)
    out_console.print(f"[green]passed[/green]: {summary}")


def _emit(document: dict[str, Any], *, exit_code: int) -> None:
    """The command's one JSON document on stdout, as every guardrail command writes it."""
    typer.echo(json.dumps({"command": "test", **document, "exit_code": exit_code}, indent=2, default=str))


def _display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)

"""``guardrail report``, and the report files and GitHub Actions output of the commands
that run a rollout (``rollout``, ``resume``, ``abort``, ``approve``: see ``publish``)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from guardrail.cli.console import err_console, out_console
from guardrail.text import printable
from guardrail.errors import UsageError
from guardrail.cli.options import JsonOption, Output, OutputOption, StateOption, emit, state_path, wants_json

HtmlOption = Annotated[Path | None, typer.Option(
    "--html", help="write the self-contained HTML report (timeline, plots, evidence) to this file",
    show_default=False)]
JunitOption = Annotated[Path | None, typer.Option(
    "--junit", help="write JUnit XML (one test case per check, region and wave) to this file", show_default=False)]
ReportOption = Annotated[Path | None, typer.Option(
    "--report", help="when the rollout stops, write its HTML report to this file", show_default=False)]


def report(rollout_id: Annotated[str, typer.Argument(help="rollout id (a unique prefix is enough)", show_default=False)],
           html: HtmlOption = None, junit: JunitOption = None, state: StateOption = None,
           output: OutputOption = Output.text, as_json: JsonOption = False) -> None:
    """Write a rollout's report: one HTML file to open anywhere, and JUnit XML for CI."""
    from guardrail.report import write
    from guardrail.state.open import is_url, open_store

    if html is None and junit is None:
        raise UsageError("say what to write: --html FILE, --junit FILE, or both")
    path = state_path(state)
    if not is_url(path) and not path.exists():  # opening a missing state file would create an empty one
        raise UsageError(f"no state file at {path}")
    store = open_store(path)
    try:
        written = write(store, rollout_id, html=html, junit=junit)
        row = store.rollout(written.id)
    except OSError as exc:
        raise UsageError(f"cannot write the report: {exc}") from None
    finally:
        store.close()
    if wants_json(output, as_json):
        emit({"rollout_id": written.id, "outcome": "written", "state": row["state"], "files": [
            {"kind": kind, "path": str(file), "bytes": file.stat().st_size}
            for kind, file in (("html", html), ("junit", junit)) if file is not None]})
        return
    for file in (html, junit):
        if file is not None:
            out_console.print(printable(f"wrote {file} ({file.stat().st_size / 1024:.0f} KiB) for rollout {written.id}"),
                              markup=False)


def publish(store, rollout_id: str, *, html: Path | None, junit: Path | None, machine_output: bool) -> None:
    """After ``rollout``/``resume``/``abort``/``approve``: write the files asked for, and
    under GitHub Actions (``GITHUB_ACTIONS=true``) print the annotations and append the
    Markdown step summary to ``$GITHUB_STEP_SUMMARY``.

    Annotations go to stdout, where workflow commands usually go; with ``--output json``
    they go to stderr instead (the runner reads workflow commands from both streams), so
    that stdout stays one JSON document. A report that cannot be written is a warning on
    stderr: the exit code stays the rollout's outcome, which is what a pipeline acts on."""
    from guardrail.report import annotations, gather, save, step_summary

    github = os.environ.get("GITHUB_ACTIONS") == "true"
    if html is None and junit is None and not github:
        return
    report_ = gather(store, rollout_id)
    try:
        save(report_, html=html, junit=junit, redactor=store.redactor)
    except OSError as exc:
        err_console.print(printable(f"warning: cannot write the report: {exc}"), style="yellow", markup=False)
    if not github:
        return
    for line in annotations(report_):
        typer.echo(line, err=machine_output)
    summary_file = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary_file:
        try:
            with open(summary_file, "a", encoding="utf-8") as out:
                out.write(step_summary(report_, str(html) if html else None))
        except OSError as exc:
            err_console.print(printable(f"warning: cannot append to $GITHUB_STEP_SUMMARY: {exc}"), style="yellow", markup=False)


def register(app: typer.Typer) -> None:
    app.command()(report)

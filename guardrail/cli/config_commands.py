"""``validate``, ``schema`` and ``plugins``: commands that look at files and plugins."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from guardrail.cli.console import out_console
from guardrail.errors import ConfigError, ExitCode
from guardrail.language.loader import validate_paths
from guardrail.language.model import Policy, Rollout
from guardrail.cli.options import plugin_manager
from guardrail.plugin.manager import plugin_infos
from guardrail.cli.options import JsonOption, Output, OutputOption, emit, wants_json


def validate(
    paths: Annotated[list[Path], typer.Argument(help="plan, policy or scenario files, or folders of them")],
    live: Annotated[bool, typer.Option("--live", help="also ask Prometheus to parse every check's query")] = False,
    prometheus: Annotated[str | None, typer.Option("--prometheus", metavar="URL",
                                                   help="the Prometheus for --live (default: the plan's)")] = None,
    output: OutputOption = Output.text,
    as_json: JsonOption = False,
) -> None:
    """Check YAML files; print every problem as FILE:LINE:COL: KEY.PATH: message (exit 2)."""

    registry = plugin_manager().registry
    checked, problems = validate_paths(paths, registry)
    if problems:
        raise ConfigError(problems)
    if checked == 0:
        raise typer.BadParameter("no guardrail YAML files found", param_hint="PATHS")
    if live:
        from guardrail.tools.live import live_problems

        problems = live_problems(paths, registry, prometheus_url=prometheus)
        if problems:
            raise ConfigError(problems)
    if wants_json(output, as_json):
        emit({"outcome": "valid", "files": checked})
        return
    out_console.print(f"[green]ok[/green]: {checked} file{'s' if checked != 1 else ''} valid")


def schema(kind: Annotated[str, typer.Argument(
        help="which document kind: rollout, policy, output (every command's --output json), or a kind a plugin "
             "adds (policytest, scenario...)")],
           source: Annotated[list[str], typer.Option(
               "--source", metavar="NAME=PLUGIN",
               help="policy: a source name a plan declares (sources: {NAME: {plugin: PLUGIN}}) that checks may "
                    "use too, with PLUGIN's parameters; repeatable")] = []) -> None:
    """Print the JSON Schema of a document kind, for editor completion; `output`: of every
    command's --output json."""
    from guardrail.language.schema import document_kinds, document_schema

    if kind.lower() == "output":
        from guardrail.report.output import output_schema

        typer.echo(json.dumps(output_schema(), indent=2))
        return
    registry = plugin_manager().registry
    models = document_kinds(registry)
    if kind.lower() not in models:
        raise typer.BadParameter(f"unknown document kind {kind!r}; known: {', '.join(sorted([*models, 'output']))}",
                                 param_hint="KIND")
    if source and kind.lower() != "policy":
        raise typer.BadParameter("names the sources a policy's checks may use: only for `schema policy`",
                                 param_hint="--source")
    aliases = {}
    for item in source:
        name, _, plugin = item.partition("=")
        if not name.strip() or not plugin.strip():
            raise typer.BadParameter(f"expected NAME=PLUGIN, got {item!r}", param_hint="--source")
        aliases[name.strip()] = plugin.strip()
    typer.echo(json.dumps(document_schema(kind, registry, sources=aliases), indent=2))


def plugins(output: OutputOption = Output.text, as_json: JsonOption = False) -> None:
    """List loaded plugins: name, version, origin and what each registers."""
    from rich.table import Table

    from guardrail.version import DISTRIBUTION, __version__

    infos = plugin_infos(plugin_manager())
    if wants_json(output, as_json):
        emit({"outcome": "listed", "version": __version__, "distribution": DISTRIBUTION,
              "plugins": [info.__dict__ for info in infos]})
        return
    table = Table("plugin", "version", "origin", "registers", box=None)
    for info in infos:
        registers = "; ".join(f"{kind.replace('_', ' ')}: {', '.join(names)}" for kind, names in info.registers.items())
        table.add_row(info.name, info.version, info.origin, registers or "-")
    out_console.print(table)


def register(app: typer.Typer) -> None:
    app.command()(validate)
    app.command()(schema)
    app.command()(plugins)


__all__ = ["register", "ExitCode"]

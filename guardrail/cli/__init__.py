"""The ``guardrail`` command line: a thin layer over the library.

Only here does a ``GuardrailError`` become a red one-line message and an exit code.
"""

from __future__ import annotations

import sys

import typer
from rich.console import Console
from typer.core import TyperGroup

from guardrail.errors import ConfigError, ExitCode, GuardrailError

err_console = Console(stderr=True, highlight=False, soft_wrap=True)
out_console = Console(highlight=False, soft_wrap=True)


def report_error(exc: GuardrailError) -> None:
    if isinstance(exc, ConfigError):
        for problem in exc.problems:
            err_console.print(str(problem), markup=False, style="red")
        count = len(exc.problems)
        err_console.print(f"error: {count} problem{'s' if count != 1 else ''} found; nothing was changed", style="bold red")
    else:
        err_console.print(f"error: {exc}", style="bold red", markup=False)


class _Group(TyperGroup):
    """Turns library errors into a message and the exit code they carry."""

    def invoke(self, ctx: typer.Context):
        try:
            return super().invoke(ctx)
        except GuardrailError as exc:
            report_error(exc)
            raise typer.Exit(int(exc.exit_code)) from None


def _print_version(value: bool) -> None:
    if value:
        from guardrail.version import DISTRIBUTION, __version__

        typer.echo(f"guardrail {__version__} ({DISTRIBUTION})")
        raise typer.Exit()


def _root(version: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True,
                                       help="Print the installed version and exit.")) -> None:
    """Staged, region-by-region rollouts that bake, judge, roll back and explain."""


def create_app(*, with_plugins: bool = True) -> typer.Typer:
    from guardrail.cli import (check_command, config_commands, incident_commands, prove_commands, report_commands,
                   rollout_commands)

    app = typer.Typer(
        cls=_Group,
        name="guardrail",
        help="Staged, region-by-region rollouts that bake, judge, roll back and explain.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
        context_settings={"help_option_names": ["-h", "--help"]},
    )
    app.callback()(_root)
    for commands in (config_commands, rollout_commands, check_command, prove_commands, report_commands,
                     incident_commands):
        commands.register(app)
    if with_plugins:
        from guardrail.plugin.manager import get_plugin_manager

        try:
            get_plugin_manager().hook.guardrail_register_commands(app=app)
        except GuardrailError:
            pass  # `guardrail plugins` will report the broken plugin with its message
    return app


def main() -> None:
    app = create_app()
    try:
        app()
    except GuardrailError as exc:  # raised while building the app
        report_error(exc)
        sys.exit(int(exc.exit_code))


__all__ = ["create_app", "main", "ExitCode"]

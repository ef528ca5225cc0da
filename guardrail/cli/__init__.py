"""The ``guardrail`` command line: a thin layer over the library.

Only here does a ``GuardrailError`` become a red one-line message and an exit code.
"""

from __future__ import annotations

import os
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


def create_app(*, with_plugins: bool = True) -> typer.Typer:
    from guardrail.cli import (check_command, config_commands, incident_commands, prove_commands, report_commands,
                   rollout_commands, temporal_commands)

    app = typer.Typer(
        cls=_Group,
        name="guardrail",
        help="Staged, region-by-region rollouts that bake, judge, roll back and explain.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
        context_settings={"help_option_names": ["-h", "--help"]},
    )
    for commands in (config_commands, rollout_commands, check_command, prove_commands, report_commands,
                     incident_commands, temporal_commands):
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
    except SystemExit as done:
        if "temporalio.client" in sys.modules:
            # The Temporal SDK's native threads may abort the interpreter's teardown
            # ("PyGILState_Release", temporalio/sdk-python#300): end without it.
            code = done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
        raise


__all__ = ["create_app", "main", "ExitCode"]

"""The ``guardrail`` command line: a thin layer over the library.

Only here does a ``GuardrailError`` become a red one-line message and an exit code.
"""

from __future__ import annotations

import os
import sys

import typer
from typer.core import TyperGroup

from guardrail.cli.console import err_console, out_console, report_error
from guardrail.cli.options import forget_plugin_manager
from guardrail.errors import ExitCode, GuardrailError

class _Group(TyperGroup):
    """Turns library errors into a message and the exit code they carry."""

    def invoke(self, ctx: typer.Context):
        from typer.exceptions import TyperException

        try:
            return super().invoke(ctx)
        except GuardrailError as exc:
            report_error(exc)
            raise typer.Exit(int(exc.exit_code)) from None
        except (TyperException, typer.Exit, typer.Abort, BrokenPipeError):  # the CLI's own (a closed pipe too)
            raise
        except KeyboardInterrupt:
            err_console.print("interrupted", style="bold red")
            raise typer.Exit(130) from None
        except Exception as exc:  # a bug: never exit 1, which means "rolled back"
            from guardrail.cli.crash import crash_message, write_log

            err_console.print(crash_message(exc, write_log(exc)), style="bold red", markup=False)
            raise typer.Exit(int(ExitCode.INTERNAL)) from None


def create_app(*, with_plugins: bool = True) -> typer.Typer:
    from guardrail.cli import (check_command, config_commands, incident_commands, prove_commands, report_commands,
                   rollout_commands, state_commands, temporal_commands)

    forget_plugin_manager()  # each run of the command line builds its own, once
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
                     incident_commands, state_commands, temporal_commands):
        commands.register(app)
    if with_plugins:
        from guardrail.cli.options import plugin_manager

        try:
            plugin_manager().hook.guardrail_register_commands(app=app)
        except GuardrailError:
            pass  # `guardrail plugins` will report the broken plugin with its message
    return app


def main() -> None:
    try:
        app = create_app()
        app()
    except GuardrailError as exc:  # raised while building the app
        report_error(exc)
        sys.exit(int(exc.exit_code))
    except Exception as exc:  # a bug outside any command (building the app): exit 70 too, never 1
        from guardrail.cli.crash import crash_message, write_log

        err_console.print(crash_message(exc, write_log(exc)), style="bold red", markup=False)
        sys.exit(int(ExitCode.INTERNAL))
    except SystemExit as done:
        if "temporalio.client" in sys.modules:
            # The Temporal SDK's native threads may abort the interpreter's teardown
            # ("PyGILState_Release", temporalio/sdk-python#300): end without it.
            code = done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
        raise


__all__ = ["create_app", "main", "ExitCode", "err_console", "out_console", "report_error"]

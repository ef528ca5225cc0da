"""The ``guardrail`` command line: a thin layer over the library.

Only here does a ``GuardrailError`` become a red one-line message and an exit code.
"""

from __future__ import annotations

import os
import shlex
import sys

import typer
from typer.core import TyperGroup

from guardrail.cli.console import err_console, out_console, report_error
from guardrail.cli.options import forget_plugin_manager
from guardrail.errors import ConfigError, ExitCode, GuardrailError

_CLICK_USAGE_ERROR = typer.BadParameter.__base__  # click's UsageError, from wherever typer takes click


def _github_problems(exc: ConfigError, argv: list[str]) -> None:
    """Under GitHub Actions: an annotation on each problem's line (stderr: stdout may be
    a JSON document; the runner reads both) and the job's step summary."""
    from guardrail.report.github import problem_annotations, problems_summary

    for line in problem_annotations(exc.problems):
        print(line, file=sys.stderr, flush=True)
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:
        try:
            with open(summary, "a", encoding="utf-8") as out:
                out.write(problems_summary(exc.problems, shlex.join(["guardrail", *argv])))
        except OSError as error:
            err_console.print(f"warning: cannot append to $GITHUB_STEP_SUMMARY: {error}", style="yellow", markup=False)


def _plain_flags(command):
    """A flag takes no value: its help shows none (typer would print ``<bool>``)."""
    if command is None:
        return None
    for param in getattr(command, "params", []):
        if getattr(param, "is_flag", False) and param.metavar is None:
            param.metavar = ""
    if not getattr(command, "_plain_help_flag", False) and hasattr(command, "get_help_option"):
        made = command.get_help_option  # click makes --help per context, outside `params`

        def get_help_option(ctx):
            option = made(ctx)
            if option is not None and option.metavar is None:
                option.metavar = ""
            return option

        command.get_help_option = get_help_option
        command._plain_help_flag = True
    for sub in getattr(command, "commands", {}).values():
        _plain_flags(sub)
    return command


class _Group(TyperGroup):
    """Turns library errors into a message and the exit code they carry; with
    ``--output json`` (or ``--json``) also into the JSON document of the failure on stdout,
    so that a pipeline reads one document whatever the exit code."""

    argv: list[str] = []

    def get_command(self, ctx, name):
        return _plain_flags(super().get_command(ctx, name))

    def format_help(self, ctx, formatter):
        _plain_flags(self)
        return super().format_help(ctx, formatter)

    def main(self, args=None, *rest, **kwargs):
        self.argv = list(sys.argv[1:] if args is None else args)
        return super().main(args, *rest, **kwargs)

    def invoke(self, ctx: typer.Context):
        from typer.exceptions import TyperException

        from guardrail.cli import options
        from guardrail.cli.options import command_name, json_requested, print_failure

        options.current_command = command_name(self, self.argv)
        try:
            return super().invoke(ctx)
        except GuardrailError as exc:
            report_error(exc)
            if isinstance(exc, ConfigError) and os.environ.get("GITHUB_ACTIONS") == "true":
                _github_problems(exc, self.argv)
            if json_requested(self.argv):
                print_failure(command_name(self, self.argv), exc, int(exc.exit_code))
            raise typer.Exit(int(exc.exit_code)) from None
        except _CLICK_USAGE_ERROR as exc:  # click prints it on stderr and exits 2
            if json_requested(self.argv):
                print_failure(command_name(self, self.argv), exc, exc.exit_code)
            raise
        except (TyperException, typer.Exit, typer.Abort, BrokenPipeError):  # the CLI's own (a closed pipe too)
            raise
        except KeyboardInterrupt:
            err_console.print("interrupted", style="bold red")
            raise typer.Exit(130) from None
        except Exception as exc:  # a bug: never exit 1, which means "rolled back"
            from guardrail.cli.crash import crash_message, write_log

            message = crash_message(exc, write_log(exc))
            err_console.print(message, style="bold red", markup=False)
            if json_requested(self.argv):  # still one document on stdout; the traceback stays in the log
                print_failure(command_name(self, self.argv), RuntimeError(message), int(ExitCode.INTERNAL))
            raise typer.Exit(int(ExitCode.INTERNAL)) from None


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
    app.callback()(_root)
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

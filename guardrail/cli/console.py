"""The command line's two consoles and how a library error is told: the only place
guardrail writes to a terminal. User-derived text is printed with ``markup=False``."""

from __future__ import annotations

from rich.console import Console

from guardrail.errors import ConfigError, GuardrailError

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

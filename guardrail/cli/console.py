"""The command line's two consoles and how a library error is told: the only place
guardrail writes to a terminal.

Text that reaches a terminal is text. Values from a user's files, a server or the
state file (file names, keys, regions, versions, reasons) are shown with ``shown()``:
control characters and newlines become escapes (``\\n``, ``\\x1b``), and rich's markup
(``[red]``) is escaped, so a value can neither start a line of its own, colour the
terminal, nor style what follows. The consoles never turn ``:100:`` into an emoji.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.markup import escape

from guardrail.errors import ConfigError, GuardrailError
from guardrail.text import printable


def console(*, stderr: bool = False) -> Console:
    """A console that prints what it is given: no emoji codes, no highlighting."""
    return Console(stderr=stderr, highlight=False, soft_wrap=True, emoji=False)


def shown(value: Any) -> str:
    """``value`` as one escaped line, safe inside a rich markup string or a table cell."""
    return escape(printable("" if value is None else value))


err_console = console(stderr=True)
out_console = console()


def report_error(exc: GuardrailError) -> None:
    if isinstance(exc, ConfigError):
        for problem in exc.problems:
            err_console.print(str(problem), markup=False, style="red")
        count = len(exc.problems)
        err_console.print(f"error: {count} problem{'s' if count != 1 else ''} found; nothing was changed", style="bold red")
    else:
        err_console.print(f"error: {printable(exc)}", style="bold red", markup=False)

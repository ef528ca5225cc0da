"""Options shared by several commands."""

from __future__ import annotations

import json
import os
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer

STATE_ENV = "GUARDRAIL_STATE"


def default_state_path() -> Path:
    """``$GUARDRAIL_STATE``, else ``$XDG_STATE_HOME/guardrail/state.db``
    (``~/.local/state/guardrail/state.db``)."""
    if os.environ.get(STATE_ENV):
        return Path(os.environ[STATE_ENV])
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "guardrail" / "state.db"


StateOption = Annotated[
    Path | None,
    typer.Option("--state", help=f"state file (SQLite); default ${STATE_ENV} or ~/.local/state/guardrail/state.db",
                 show_default=False),
]


class Output(str, Enum):
    text = "text"
    json = "json"


OutputOption = Annotated[Output, typer.Option("--output", "-o", help="text for people, json for pipelines "
                                                                    "(`guardrail schema output` describes it)")]
JsonOption = Annotated[bool, typer.Option("--json", help="the same as --output json")]


def wants_json(output: Output, as_json: bool) -> bool:
    return as_json or output is Output.json


current_command = "guardrail"
"""The (sub)command being run, as named on the command line (set by the app)."""


def emit(document: dict[str, Any], *, exit_code: int = 0) -> None:
    """Print a command's JSON document (``command`` and ``exit_code`` filled in) on stdout."""
    doc = {"command": current_command, **document, "exit_code": int(exit_code)}
    typer.echo(json.dumps(doc, indent=2, default=str))


def json_requested(argv: list[str]) -> bool:
    """Whether the command line asks for JSON (read before the command could parse it)."""
    for i, token in enumerate(argv):
        if token == "--":
            break
        if token in ("--json", "--output=json", "-ojson") or (
                token in ("-o", "--output") and i + 1 < len(argv) and argv[i + 1] == "json"):
            return True
    return False


def command_name(group: Any, argv: list[str]) -> str:
    """The (sub)command named on the command line: ``rollout``, ``incidents flush``."""
    names = []
    for token in argv:
        if token.startswith("-"):
            break
        command = getattr(group, "commands", {}).get(token)
        if command is None:
            break
        names.append(token)
        group = command
    return " ".join(names) or "guardrail"


def print_failure(command: str, exc: Exception, exit_code: int) -> None:
    from guardrail.report.output import failure

    typer.echo(json.dumps(failure(command, exc, exit_code), indent=2, default=str))


def state_path(value: Path | None) -> Path:
    return value if value is not None else default_state_path()

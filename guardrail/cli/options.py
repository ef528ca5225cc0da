"""Options shared by several commands."""

from __future__ import annotations

import json
import os
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer

from guardrail.errors import UsageError

STATE_ENV = "GUARDRAIL_STATE"

_manager: tuple[tuple, object] | None = None


def plugin_manager():
    """The plugin manager of this command-line run: built once, on first use, and shared
    by every command while the places plugins are found from stay the same (the folders
    on ``sys.path`` and what they hold, ``GUARDRAIL_PLUGINS``,
    ``GUARDRAIL_DISABLE_PLUGIN_AUTOLOAD``): a process that installs a plugin (a test, an
    embedding program) gets a manager that sees it."""
    global _manager
    import sys

    from guardrail.plugin.manager import DISABLE_AUTOLOAD_ENV, PLUGINS_ENV, get_plugin_manager

    key = (tuple(_stamp(entry) for entry in sys.path), os.environ.get(PLUGINS_ENV),
           os.environ.get(DISABLE_AUTOLOAD_ENV))
    if _manager is None or _manager[0] != key:
        _manager = (key, get_plugin_manager())
    return _manager[1]


def _stamp(entry: str) -> tuple[str, int]:
    try:
        return entry, os.stat(entry or ".").st_mtime_ns
    except OSError:
        return entry, 0


def forget_plugin_manager() -> None:
    global _manager
    _manager = None


def default_state_path() -> Path | str:
    """``$GUARDRAIL_STATE``, else ``$XDG_STATE_HOME/guardrail/state.db``
    (``~/.local/state/guardrail/state.db``)."""
    from guardrail.state.open import default_spec, is_url

    spec = default_spec()
    return spec if is_url(spec) else Path(spec)


StateOption = Annotated[
    str | None,
    typer.Option("--state", help=f"state: a SQLite file, or a postgresql:// URL shared by many runners (its password"
                                 f" from PGPASSWORD or ${{env:NAME}}); default ${STATE_ENV} or "
                                 f"~/.local/state/guardrail/state.db", show_default=False),
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


def state_path(value: str | Path | None) -> Path | str:
    """The state a command uses: a file path, or a database URL (a string). A crash log
    goes beside the file, or in the state folder of a database (``state_dir``)."""
    from guardrail.cli.crash import note_state

    spec = _state_spec(value)
    note_state(spec if isinstance(spec, Path) else state_dir(spec) / "state")
    return spec


def _state_spec(value: str | Path | None) -> Path | str:
    if value is None:
        return default_state_path()
    from guardrail.state.open import is_url

    if not is_url(value):
        return Path(value)
    try:
        from guardrail.state.pgconn import literal_password
    except ImportError:  # opening the store says which extra to install
        return str(value)
    if literal_password(str(value)):
        # A command line is seen by `ps` and kept in shell history: no passwords there.
        raise UsageError(f"--state carries a password; give it through PGPASSWORD, a ${{env:NAME}} in its place, "
                         f"or the whole URL in ${STATE_ENV}")
    return str(value)


def state_dir(spec: Path | str) -> Path:
    """Where plugins keep local files for this state: the SQLite file's folder, else the working folder."""
    from guardrail.state.open import is_url

    if is_url(spec):
        return Path(os.environ.get("GUARDRAIL_STATE_DIR") or Path.cwd()).absolute()
    return Path(spec).absolute().parent

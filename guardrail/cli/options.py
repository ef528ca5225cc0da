"""Options shared by several commands."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

STATE_ENV = "GUARDRAIL_STATE"

_manager = None


def plugin_manager():
    """The plugin manager of this command-line run: built once, on first use, and shared
    by every command (``create_app`` starts each run with none)."""
    global _manager
    if _manager is None:
        from guardrail.plugin.manager import get_plugin_manager

        _manager = get_plugin_manager()
    return _manager


def forget_plugin_manager() -> None:
    global _manager
    _manager = None


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
JsonOption = Annotated[bool, typer.Option("--json", help="print JSON instead of a table")]


def state_path(value: Path | None) -> Path:
    from guardrail.cli.crash import note_state

    path = value if value is not None else default_state_path()
    note_state(path)  # a crash log goes beside it
    return path

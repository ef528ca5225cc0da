"""Options shared by several commands."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from guardrail.errors import UsageError

STATE_ENV = "GUARDRAIL_STATE"


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
JsonOption = Annotated[bool, typer.Option("--json", help="print JSON instead of a table")]


def state_path(value: str | Path | None) -> Path | str:
    """The state a command uses: a file path, or a database URL (a string)."""
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

"""``guardrail state migrate|copy``: create or upgrade a state store explicitly, and move
history between stores.

``migrate`` is for operators who do not let applications run DDL: run it once with a
role that may, and let the runners' role only read and write (``GUARDRAIL_STATE_MIGRATE=0``
makes every other command refuse a database it would have to change). ``copy`` moves a
SQLite file's history (rollouts, ticks, incidents, their outbox, locks) into the
PostgreSQL database many runners share.
"""

from __future__ import annotations

import json
from typing import Annotated

import typer

from guardrail.cli.options import JsonOption, state_path

state_app = typer.Typer(help="The state store: create or upgrade it, copy history between stores.",
                        no_args_is_help=True)
StoreArgument = Annotated[str, typer.Argument(
    help="a SQLite file, or a postgresql:// URL (its password from PGPASSWORD or ${env:NAME})", show_default=False)]


def _open(spec: str, *, must_exist: bool = False, migrate: bool | None = None):
    from guardrail.errors import UsageError
    from guardrail.state.open import is_url, open_store

    resolved = state_path(spec)
    if must_exist and not is_url(resolved) and not resolved.exists():
        raise UsageError(f"no state file at {resolved}")
    return open_store(resolved, migrate=migrate)


@state_app.command()
def migrate(store: StoreArgument, as_json: JsonOption = False) -> None:
    """Create the store's tables, or upgrade them to this guardrail's schema."""
    from guardrail.cli import out_console
    from guardrail.state.schema import SCHEMA_VERSION

    opened = _open(store, migrate=True)
    try:
        where = opened.location
    finally:
        opened.close()
    if as_json:
        typer.echo(json.dumps({"store": where, "schema_version": SCHEMA_VERSION}))
    else:
        out_console.print(f"{where}: schema {SCHEMA_VERSION}, up to date", markup=False)


@state_app.command()
def copy(src: StoreArgument, dst: StoreArgument, as_json: JsonOption = False) -> None:
    """Copy every rollout DST lacks from SRC, with its events, steps, ticks, baselines,
    incident and outbox; then the locks and delivery claims DST has none for."""
    from guardrail.cli import out_console
    from guardrail.state.copy import copy_state

    source = _open(src, must_exist=True)
    try:
        target = _open(dst)
        try:
            done = copy_state(source, target)
            names = source.location, target.location
        finally:
            target.close()
    finally:
        source.close()
    if as_json:
        typer.echo(json.dumps({"from": names[0], "to": names[1], "rollouts": done.rollouts, "rows": done.rows,
                               "skipped": done.skipped}, indent=2))
        return
    rows = ", ".join(f"{count} {table}" for table, count in done.rows.items() if count)
    out_console.print(f"copied {done.rollouts} rollout{'s' if done.rollouts != 1 else ''} from {names[0]} to "
                      f"{names[1]}" + (f" ({rows})" if rows else ""), markup=False)
    if done.skipped:
        out_console.print(f"skipped {len(done.skipped)} already there: {', '.join(done.skipped)}", markup=False)


def register(app: typer.Typer) -> None:
    app.add_typer(state_app, name="state")

"""Open the store a ``--state`` value or ``GUARDRAIL_STATE`` names: a path is a SQLite
file (the default, nothing to install); a ``postgresql://`` URL is a PostgreSQL
database (the ``postgres`` extra: psycopg 3 and its pool, imported only then)."""

from __future__ import annotations

import os
from pathlib import Path

from guardrail.errors import StoreError, UsageError
from guardrail.secrets import Redactor
from guardrail.state.protocol import Store

URL_SCHEMES = ("postgresql://", "postgres://")
MIGRATE_ENV = "GUARDRAIL_STATE_MIGRATE"
EXTRA_HINT = "pip install 'guardrail-rollout[postgres]'"


def is_url(spec: str | Path) -> bool:
    """Whether a state spec names a database server rather than a file."""
    return isinstance(spec, str) and "://" in spec


def open_store(spec: str | Path | Store, redactor: Redactor | None = None, *, environ: dict[str, str] | None = None,
               migrate: bool | None = None) -> Store:
    """The store ``spec`` names; an open store is returned as it is.

    ``migrate``: create or upgrade a database's schema on open (the default, unless
    ``GUARDRAIL_STATE_MIGRATE=0``); False refuses a database without guardrail's tables
    or with older ones (for operators who run ``guardrail state migrate`` themselves)."""
    if not isinstance(spec, (str, Path)):
        return spec
    if not is_url(spec):
        from guardrail.state.sqlite import SQLiteStore

        return SQLiteStore(Path(spec).absolute(), redactor)
    if not spec.startswith(URL_SCHEMES):
        raise UsageError(f"unsupported state URL {spec.split('://', 1)[0]}://...: give a file path (SQLite) "
                         f"or a postgresql:// URL")
    try:
        from guardrail.state.pgconn import resolve_url
        from guardrail.state.postgres import PostgresStore
    except ImportError as exc:
        if not (exc.name or "").split(".")[0] in ("psycopg", "psycopg_pool"):
            raise  # guardrail's own module failed to import: a bug, not a missing extra
        raise StoreError(f"a postgresql:// state needs the postgres extra ({exc.name} is not installed): "
                         f"{EXTRA_HINT}") from None
    env = os.environ if environ is None else environ
    if migrate is None:
        migrate = env.get(MIGRATE_ENV, "1") != "0"
    redactor = redactor or Redactor()
    url, secrets = resolve_url(spec, environ)
    redactor.add(secrets)
    return PostgresStore(url, redactor, environ=environ, migrate=migrate)


def default_spec(environ: dict[str, str] | None = None) -> str:
    """``$GUARDRAIL_STATE``, else ``$XDG_STATE_HOME/guardrail/state.db``."""
    env = os.environ if environ is None else environ
    if env.get("GUARDRAIL_STATE"):
        return env["GUARDRAIL_STATE"]
    base = env.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return str(Path(base) / "guardrail" / "state.db")

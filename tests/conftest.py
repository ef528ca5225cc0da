"""Fixtures shared by many test modules. Keep this file small: a fixture used by one
module belongs in that module."""

from __future__ import annotations

import os


def _isolate_environment() -> None:
    """The tests see the same environment wherever they run.

    Done at import, before anything imports typer or rich: both read some of these
    variables once, when they are imported or when a console is created.

    - ``GITHUB_*``: under GitHub Actions (``GITHUB_ACTIONS=true``) guardrail prints
      workflow annotations, appends to the runner's ``$GITHUB_STEP_SUMMARY`` and typer
      forces colour; the tests of that behaviour set these variables themselves.
    - ``GUARDRAIL_*`` (other than the tests' own ``GUARDRAIL_REPORT_SCREENSHOTS``): a
      state file, plugins, a lock lease or disabled autoload from the caller's shell.
    - ``COLUMNS``/``LINES``, ``TERMINAL_WIDTH`` and the colour switches: tables are laid
      out at the default 80 columns and output carries no escape codes.
    - a proxy: every server the tests talk to is on the loopback interface.
    - ``PG*``: libpq reads them (``PGHOST``, ``PGPASSWORD``, ``PGSSLMODE``...); they would
      send connections elsewhere, or supply a password a test expects to be missing.
    """
    for name in list(os.environ):
        if (name.startswith(("GITHUB_", "PG"))
                or (name.startswith("GUARDRAIL_") and name != "GUARDRAIL_REPORT_SCREENSHOTS")):
            del os.environ[name]
    for name in ("COLUMNS", "LINES", "TERMINAL_WIDTH", "FORCE_COLOR", "PY_COLORS", "TTY_COMPATIBLE",
                 "TTY_INTERACTIVE"):
        os.environ.pop(name, None)
    for name in ("NO_PROXY", "no_proxy"):
        os.environ[name] = ",".join(filter(None, [os.environ.get(name), "127.0.0.1", "localhost", "::1"]))


_isolate_environment()

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "tests" / "data"


@pytest.fixture(scope="session")
def registry():
    """What the installed plugins registered (built from a fresh plugin manager)."""
    from guardrail.plugin.manager import get_plugin_manager

    return get_plugin_manager().registry


@pytest.fixture
def cli(monkeypatch):
    """``cli("validate", "x.yaml")``: run the command line in-process from the repository
    root (so messages name files as ``tests/data/...``) and return click's Result."""
    from guardrail.cli import create_app

    monkeypatch.chdir(REPO)
    runner = CliRunner()
    app = create_app()

    def invoke(*args: str, env: dict[str, str | None] | None = None):
        return runner.invoke(app, list(args), env=env)

    return invoke


@pytest.fixture(scope="session")
def postgres_server():
    """A throwaway PostgreSQL cluster on 127.0.0.1 for the whole session
    (tests/support/postgres.py): ``url``, ``secret_url``, ``create_database``, ``restart``,
    ``paused``... Missing PostgreSQL fails the test, naming what installs it: never a skip."""
    from support.postgres import PostgresServer, PostgresUnavailable

    missing = None
    try:
        server = PostgresServer()
    except PostgresUnavailable as error:
        missing = str(error)
    if missing:  # outside the except block, so the message is not printed twice
        pytest.fail(missing, pytrace=False)
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def postgres_url(postgres_server) -> str:
    """The URL of a fresh, empty database for this test only (superuser ``guardrail``, no
    password); dropped afterwards, with any connection the test left open."""
    # An earlier test may have stopped or paused the shared cluster and failed before undoing it.
    postgres_server.ensure_running()
    name = postgres_server.create_database()
    yield postgres_server.url(name)
    postgres_server.ensure_running()
    postgres_server.drop_database(name)


@pytest.fixture(scope="session")
def temporal_server(tmp_path_factory):
    """A real Temporal dev server on loopback, one for the session (tests/support/temporal.py):
    ``.address`` is ``127.0.0.1:PORT``, ``.namespace`` the namespace to use, ``await
    .connect()`` a client. The binary and SDK come from the ``test`` extra (scripts/test)."""
    from support.temporal import TemporalServer

    with TemporalServer(tmp_path_factory.mktemp("temporal")) as server:
        yield server


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request, tmp_path, monkeypatch):
    """Each store backend in turn (tests/support/stores.py): the conformance suite runs
    every test that takes this fixture on SQLite and on a real PostgreSQL. Plugins keep
    their local files (the simulated fleet, the journal) in ``tmp_path/state`` either way."""
    from support.stores import PostgresBackend, SQLiteBackend

    if request.param == "sqlite":
        return SQLiteBackend(tmp_path)
    (tmp_path / "state").mkdir(exist_ok=True)
    monkeypatch.setenv("GUARDRAIL_STATE_DIR", str(tmp_path / "state"))
    return PostgresBackend(request.getfixturevalue("postgres_url"))

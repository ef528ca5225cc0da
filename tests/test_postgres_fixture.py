"""The PostgreSQL the tests run against (tests/support/postgres.py), proven with psycopg 3:
a fresh database per test, the password role, restarts and pauses, isolation, and no
cluster left behind by a closed or killed test process."""

from __future__ import annotations

import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor, wait
from pathlib import Path

import psycopg
import pytest

from support import postgres
from support.postgres import PostgresServer, cluster_pids

pytestmark = pytest.mark.postgres

TESTS = Path(__file__).resolve().parent


def alive(pid: int) -> bool:
    """Whether ``pid`` still runs (a zombie waiting for init to reap it does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_a_fresh_database_is_empty_and_takes_a_table(postgres_url):
    with psycopg.connect(postgres_url) as connection:
        assert connection.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").fetchone() == (0,)
        connection.execute("CREATE TABLE rollouts (id text PRIMARY KEY, state text NOT NULL)")
        connection.execute("INSERT INTO rollouts VALUES (%s, %s)", ("r1", "baking"))
        assert connection.execute("SELECT id, state FROM rollouts").fetchall() == [("r1", "baking")]
        assert connection.execute("SHOW listen_addresses").fetchone() == ("127.0.0.1",)
        assert connection.execute("SHOW fsync").fetchone() == ("off",)


def test_the_password_role_needs_its_password(postgres_server, tmp_path):
    name = postgres_server.create_database(owner=postgres_server.password_user)
    with psycopg.connect(postgres_server.secret_url(name)) as connection:
        assert connection.execute("SELECT current_user").fetchone() == (postgres_server.password_user,)
        connection.execute("CREATE TABLE owned (x int)")  # it owns the database, so its public schema
    assert postgres_server.password not in postgres_server.url(name)
    # No ~/.pgpass either: the password must come from the URL or nowhere.
    nowhere = tmp_path / "no-passfile"
    without = postgres_server.url(name, user=postgres_server.password_user)
    with pytest.raises(psycopg.OperationalError, match="no password supplied|password authentication failed"):
        psycopg.connect(without, passfile=str(nowhere))
    wrong = postgres_server.url(name, user=postgres_server.password_user, password="not-" + postgres_server.password)
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(wrong, passfile=str(nowhere))


def test_a_restart_keeps_the_data_and_drops_the_connections(postgres_server, postgres_url):
    port = postgres_server.port
    with psycopg.connect(postgres_url, autocommit=True) as connection:
        connection.execute("CREATE TABLE kept (x int)")
        connection.execute("INSERT INTO kept VALUES (1)")
        postgres_server.restart()
        with pytest.raises(psycopg.OperationalError):
            connection.execute("SELECT 1")
        assert connection.broken
    assert postgres_server.port == port
    with psycopg.connect(postgres_url) as again:
        assert again.execute("SELECT x FROM kept").fetchall() == [(1,)]


def test_a_paused_cluster_makes_queries_and_connections_hang_then_recovers(postgres_server, postgres_url):
    with psycopg.connect(postgres_url, autocommit=True) as connection, ThreadPoolExecutor(2) as threads:
        with postgres_server.paused():
            query = threads.submit(lambda: connection.execute("SELECT 42").fetchone())
            fresh = threads.submit(psycopg.connect, postgres_url)
            finished, _ = wait([query, fresh], timeout=1.0)
            assert not finished, "a paused cluster answered"
        assert query.result(timeout=10) == (42,)
        fresh.result(timeout=10).close()


def test_pause_for_holds_a_call_then_lets_it_through(postgres_server, postgres_url):
    with psycopg.connect(postgres_url) as connection:
        started = time.monotonic()
        postgres_server.pause_for(1.0)
        assert connection.execute("SELECT 1").fetchone() == (1,)
        assert time.monotonic() - started >= 0.9
    assert not postgres_server.is_paused


def test_two_databases_are_isolated(postgres_server):
    first, second = postgres_server.create_database(), postgres_server.create_database()
    try:
        for name, value in ((first, "one"), (second, "two")):
            with psycopg.connect(postgres_server.url(name)) as connection:
                connection.execute("CREATE TABLE state (value text)")
                connection.execute("INSERT INTO state VALUES (%s)", (value,))
        for name, value in ((first, "one"), (second, "two")):
            with psycopg.connect(postgres_server.url(name)) as connection:
                assert connection.execute("SELECT value FROM state").fetchall() == [(value,)]
    finally:
        postgres_server.drop_database(first)
        postgres_server.drop_database(second)


def test_close_stops_every_process_and_removes_the_folder():
    with PostgresServer() as server:
        pids = cluster_pids(server.data)
        assert len(pids) > 1  # the postmaster and its background processes
        server.pause()  # a frozen cluster must close too
    assert not server.base.exists()
    assert not [pid for pid in pids if alive(pid)]


def test_a_killed_test_process_leaves_no_cluster_behind():
    script = ("import sys, time\n"
              f"sys.path.insert(0, {str(TESTS)!r})\n"
              "from support.postgres import PostgresServer, cluster_pids\n"
              "server = PostgresServer()\n"
              "print(server.base, *cluster_pids(server.data), flush=True)\n"
              "time.sleep(600)\n")
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        base, *pids = child.stdout.readline().split()
    finally:
        child.kill()
    assert pids, child.communicate()[1]
    child.communicate()
    deadline = time.monotonic() + 30
    while (Path(base).exists() or any(alive(int(pid)) for pid in pids)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not Path(base).exists()
    assert not [pid for pid in pids if alive(int(pid))]


def test_missing_binaries_fail_naming_what_installs_them(monkeypatch, tmp_path):
    monkeypatch.setattr(postgres, "DEBIAN_BINARIES", tmp_path)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(postgres.PostgresUnavailable, match="scripts/test installs them"):
        postgres.find_bindir()

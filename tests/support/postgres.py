"""A throwaway PostgreSQL cluster on loopback for the tests (Debian package ``postgresql``).

``PostgresServer()`` makes a temporary folder, then, as the ``postgres`` OS user when
the tests run as root (PostgreSQL refuses to run as root), runs::

    initdb -D DIR/data -U guardrail --auth=trust --no-sync --encoding=UTF8 --locale=C --no-instructions
    pg_ctl start -w -t 30 -D DIR/data -l DIR/postgres.log

with ``DIR/data/guardrail.conf`` (included from ``postgresql.conf``): listening on
``127.0.0.1`` only, on a free port, its unix socket in ``DIR/sock``, fsync off. It takes
about a second. Two roles:

- ``guardrail``, the superuser, trusted (no password) on loopback and the socket;
- ``guardrail_secret``, which must give its password (scram-sha-256): for the tests that
  check a password never shows up where it should not. ``secret_url(db)`` carries it.

``create_database()`` copies an empty template (``guardrail_template``), so each test
gets its own database in tens of milliseconds. ``stop``, ``start`` and ``restart`` make an
outage that drops every connection; ``pause``/``resume`` (or ``with paused():``,
``pause_for(seconds)``) freeze the postmaster and its backends with SIGSTOP/SIGCONT, so
connections hang instead of failing, as when a network drops packets.

``close()`` stops the cluster and removes the folder. A watchdog process does the same
if the test process dies without closing it (even on SIGKILL): no cluster outlives the
session.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Iterator
from urllib.parse import quote

import psycopg
from psycopg import sql

DEBIAN_BINARIES = Path("/usr/lib/postgresql")
INSTALL_HINT = ("scripts/test installs them (Debian's package postgresql, with apt-get); "
                "or run: apt-get install postgresql")


class PostgresUnavailable(RuntimeError):
    """PostgreSQL's server programs are not installed: nothing to start."""


def find_bindir() -> Path:
    """The folder holding ``initdb`` and ``pg_ctl``: Debian's newest version, else ``PATH``.

    Debian keeps the server programs out of ``PATH`` (in /usr/lib/postgresql/VERSION/bin);
    other systems put them in ``PATH``. A ``PATH`` entry may be a symlink, so it is resolved
    to find the ``pg_ctl`` that belongs to the same ``initdb``.
    """
    def version(initdb: Path) -> int:
        name = initdb.parent.parent.name
        return int(name) if name.isdigit() else 0

    candidates = sorted(DEBIAN_BINARIES.glob("*/bin/initdb"), key=version, reverse=True)
    found = shutil.which("initdb")
    if found:
        candidates.append(Path(found).resolve())
    for initdb in candidates:
        if (initdb.parent / "pg_ctl").is_file():
            return initdb.parent
    raise PostgresUnavailable(f"PostgreSQL's initdb and pg_ctl were not found in {DEBIAN_BINARIES}/*/bin "
                              f"nor on PATH: {INSTALL_HINT}")


def _free_port() -> int:
    """A port nobody listens on right now (another process may take it: callers retry)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _run_as() -> list[str]:
    """The prefix that runs a command as the ``postgres`` OS user when we are root, else nothing."""
    if os.geteuid() != 0:
        return []
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        raise PostgresUnavailable(f"the tests run as root and there is no postgres OS user to run "
                                  f"PostgreSQL as: {INSTALL_HINT}") from None
    return ["runuser", "-u", "postgres", "--"]


def cluster_pids(data: Path) -> list[int]:
    """The postmaster (first) and its children, from ``postmaster.pid`` and /proc.

    Nothing when the postmaster is gone: a pid file left by a crashed postmaster may
    name a pid the system has since given to an unrelated process, which we must not
    signal. So the pid counts only if its command line names our data folder.
    """
    try:
        postmaster = int((data / "postmaster.pid").read_text().split()[0])
        command = Path(f"/proc/{postmaster}/cmdline").read_bytes().split(b"\0")
    except (OSError, ValueError, IndexError):
        return []
    if os.fsencode(data) not in command:
        return []
    children = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue  # exited while we looked
        # The command name is in parentheses and may hold spaces: the fields follow the last ")".
        if int(stat.rsplit(")", 1)[1].split()[1]) == postmaster:
            children.append(int(entry.name))
    return [postmaster, *children]


def _signal(pids: list[int], signum: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)


class PostgresServer:
    """A running throwaway cluster (see the module docstring). A context manager, or ``close()``."""

    user = "guardrail"
    password_user = "guardrail_secret"
    template = "guardrail_template"
    host = "127.0.0.1"

    def __init__(self, *, bindir: Path | None = None, startup_timeout: float = 30.0):
        self.bindir = bindir or find_bindir()
        self.startup_timeout = startup_timeout
        self._as = _run_as()
        self.password = f"s3cret-{secrets.token_hex(8)}"
        self.is_running = False
        self.is_paused = False
        self._names = itertools.count(1)
        # Not under pytest's basetemp: it is private to root (0700), and the postgres
        # user could not reach a data folder inside it.
        self.base = Path(tempfile.mkdtemp(prefix="guardrail-pg-"))
        self.data = self.base / "data"
        self.socket_dir = self.base / "sock"
        self.log_path = self.base / "postgres.log"
        self._watchdog: subprocess.Popen | None = None
        try:
            self.socket_dir.mkdir()
            self._give_to_postgres(self.base, self.socket_dir)
            self._watchdog = self._start_watchdog()
            self._pg("initdb", "-D", self.data, "-U", self.user, "--auth=trust", "--no-sync",
                     "--encoding=UTF8", "--locale=C", "--no-instructions")
            self._write_hba()
            self._start_on_a_free_port()
            self._bootstrap()
        except BaseException:
            self.close()
            raise

    # -- URLs and databases -------------------------------------------------------------

    def url(self, dbname: str = "postgres", *, user: str | None = None, password: str | None = None) -> str:
        """``postgresql://USER[:PASSWORD]@127.0.0.1:PORT/DBNAME`` (TCP), as ``user`` (default: the superuser)."""
        auth = quote(user or self.user, safe="")
        if password is not None:
            auth += ":" + quote(password, safe="")
        return f"postgresql://{auth}@{self.host}:{self.port}/{quote(dbname, safe='')}"

    def secret_url(self, dbname: str = "postgres") -> str:
        """The URL of ``dbname`` as the password-authenticated role, password included."""
        return self.url(dbname, user=self.password_user, password=self.password)

    def create_database(self, name: str | None = None, *, owner: str | None = None) -> str:
        """A new empty database (copied from the template); returns its name.

        ``owner``: the role that owns it (default: the superuser). The owner may create
        tables in its ``public`` schema, which PostgreSQL 15 allows no one else.
        """
        name = name or f"test_{next(self._names)}"
        self._admin(sql.SQL("CREATE DATABASE {} TEMPLATE {} OWNER {}").format(
            sql.Identifier(name), sql.Identifier(self.template), sql.Identifier(owner or self.user)))
        return name

    def drop_database(self, name: str) -> None:
        """Drop ``name``, closing whatever connections a test left open on it."""
        self._admin(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))

    # -- outages --------------------------------------------------------------------------

    def stop(self) -> None:
        """Shut down (``pg_ctl stop -m fast``): every connection is closed; data is kept."""
        self.resume()
        if self.is_running:
            self._pg("pg_ctl", "stop", "-D", self.data, "-m", "fast", "-w", "-t", str(int(self.startup_timeout)))
            self.is_running = False

    def start(self) -> None:
        """Start again on the same port (``pg_ctl start -w``)."""
        if self.is_running:
            return
        done = self._pg("pg_ctl", "start", "-D", self.data, "-l", self.log_path, "-w",
                        "-t", str(int(self.startup_timeout)), check=False)
        if done.returncode != 0:
            raise AssertionError(f"PostgreSQL did not start: {done.stdout}{done.stderr}\n{self._log_tail()}")
        self.is_running = True

    def restart(self) -> None:
        """``stop`` then ``start``: connections are lost, data is kept, the URL stays the same."""
        self.stop()
        self.start()

    def pause(self) -> None:
        """Freeze the postmaster and its backends (SIGSTOP): queries and new connections hang."""
        if self.is_paused or not self.is_running:
            return
        self.is_paused = True
        # The postmaster first, so that it forks no backend we would miss.
        _signal(cluster_pids(self.data)[:1], signal.SIGSTOP)
        _signal(cluster_pids(self.data)[1:], signal.SIGSTOP)

    def resume(self) -> None:
        """Let a paused cluster run again (SIGCONT): what hung proceeds."""
        # Sent even when not marked paused: harmless, and it thaws a cluster whatever froze it.
        _signal(cluster_pids(self.data), signal.SIGCONT)
        self.is_paused = False

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """``with server.paused():`` the cluster is frozen inside the block."""
        self.pause()
        try:
            yield
        finally:
            self.resume()

    def pause_for(self, seconds: float) -> threading.Timer:
        """Freeze now and resume in the background after ``seconds``: a call made meanwhile blocks, then succeeds."""
        self.pause()
        timer = threading.Timer(seconds, self.resume)
        timer.daemon = True
        timer.start()
        return timer

    def ensure_running(self) -> None:
        """Undo whatever outage an earlier test left behind."""
        self.resume()
        self.start()

    # -- life cycle ---------------------------------------------------------------------------

    def close(self) -> None:
        """Stop the cluster for good and remove its folder. Idempotent."""
        if self.data.exists():
            self.resume()
            # Immediate: nothing is kept, so there is no point in a clean shutdown.
            self._pg("pg_ctl", "stop", "-D", self.data, "-m", "immediate", "-w", "-t", "10", check=False)
            # pg_ctl gave up (or the cluster was half-started): no process may outlive us.
            _signal(cluster_pids(self.data), signal.SIGKILL)
        self.is_running = False
        shutil.rmtree(self.base, ignore_errors=True)
        if self._watchdog is not None:
            self._watchdog.communicate(b"closed", timeout=30)
            self._watchdog = None

    def __enter__(self) -> PostgresServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- inside -------------------------------------------------------------------------------

    def _pg(self, program: str, *args: object, check: bool = True) -> subprocess.CompletedProcess:
        """Run one of PostgreSQL's programs as the postgres user (an argv list: no shell)."""
        # PG* variables from the caller's shell (PGDATA, PGPORT...) would override our arguments.
        env = {name: value for name, value in os.environ.items() if not name.startswith("PG")}
        done = subprocess.run([*self._as, str(self.bindir / program), *map(str, args)], cwd=self.base, env=env,
                              stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=self.startup_timeout + 30)
        if check and done.returncode != 0:
            raise AssertionError(f"{program} failed ({done.returncode}): {done.stdout}{done.stderr}\n"
                                 f"{self._log_tail()}")
        return done

    def _give_to_postgres(self, *paths: Path) -> None:
        if self._as:
            account = pwd.getpwnam("postgres")
            for path in paths:
                os.chown(path, account.pw_uid, account.pw_gid)

    def _start_watchdog(self) -> subprocess.Popen:
        """A process that closes the cluster when our end of its stdin closes without saying so.

        The kernel closes that pipe however this process ends, SIGKILL included. In its own
        session, so the Ctrl-C that interrupts pytest does not kill it first.
        """
        return subprocess.Popen([sys.executable, __file__, "watch", str(self.base), str(self.bindir), *self._as],
                                stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)

    def _write_hba(self) -> None:
        """pg_hba.conf: the password role must authenticate, everyone else is trusted. And
        postgresql.conf includes our settings, which ``_configure`` (re)writes."""
        (self.data / "pg_hba.conf").write_text(
            "# TYPE  DATABASE  USER              ADDRESS        METHOD\n"
            f"local   all       {self.password_user}                 scram-sha-256\n"
            f"host    all       {self.password_user}  127.0.0.1/32   scram-sha-256\n"
            "local   all       all                              trust\n"
            "host    all       all               127.0.0.1/32   trust\n")
        with open(self.data / "postgresql.conf", "a") as conf:
            conf.write("\ninclude 'guardrail.conf'\n")

    def _configure(self, port: int) -> None:
        socket_dir = str(self.socket_dir).replace("'", "''")
        (self.data / "guardrail.conf").write_text(
            "# Written by tests/support/postgres.py for one test session.\n"
            "listen_addresses = '127.0.0.1'\n"
            f"port = {port}\n"
            f"unix_socket_directories = '{socket_dir}'\n"
            "# Nothing here must survive a power cut: skip every flush to disk.\n"
            "fsync = off\n"
            "synchronous_commit = off\n"
            "full_page_writes = off\n"
            "# Connection pools of many tests, some left to the drop of their database.\n"
            "max_connections = 200\n"
            "shared_buffers = 32MB\n"
            "timezone = 'UTC'\n"
            "log_timezone = 'UTC'\n"
            "password_encryption = 'scram-sha-256'\n")
        self._give_to_postgres(self.data / "guardrail.conf", self.data / "pg_hba.conf")

    def _start_on_a_free_port(self) -> None:
        """Start on a port that was free a moment ago; another process may win the race, so retry."""
        for _attempt in range(5):
            self.port = _free_port()
            self._configure(self.port)
            logged = self.log_path.stat().st_size if self.log_path.exists() else 0
            try:
                self.start()
                return
            except AssertionError:
                with open(self.log_path, errors="replace") as log:
                    log.seek(logged)
                    if "Address already in use" not in log.read():
                        raise
        raise AssertionError(f"PostgreSQL found no free port:\n{self._log_tail()}")

    def _bootstrap(self) -> None:
        """The password role and the empty template every test database is copied from."""
        self._admin(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
            sql.Identifier(self.password_user), sql.Literal(self.password)))
        # Nobody may connect to the template: CREATE DATABASE refuses a template in use.
        self._admin(sql.SQL("CREATE DATABASE {} IS_TEMPLATE true ALLOW_CONNECTIONS false").format(
            sql.Identifier(self.template)))

    def _admin(self, statement: sql.Composable) -> None:
        """Run one statement as the superuser over the unix socket, outside a transaction."""
        with psycopg.connect(host=str(self.socket_dir), port=self.port, user=self.user, dbname="postgres",
                             autocommit=True, connect_timeout=10) as connection:
            connection.execute(statement)

    def _log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no PostgreSQL log)"


def _watch(base: Path, bindir: Path, run_as: list[str]) -> None:
    """The watchdog: wait for the test process, then close the cluster if it did not."""
    if sys.stdin.buffer.read() == b"closed":
        return
    data = base / "data"
    _signal(cluster_pids(data), signal.SIGCONT)
    subprocess.run([*run_as, str(bindir / "pg_ctl"), "stop", "-D", str(data), "-m", "immediate", "-w", "-t", "10"],
                   cwd="/", stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30)
    _signal(cluster_pids(data), signal.SIGKILL)
    shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__" and sys.argv[1:2] == ["watch"]:
    _watch(Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4:])

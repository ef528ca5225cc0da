"""Talking to PostgreSQL through an outage: the connection pool, deadlines, retries.

``Database(url)`` runs each unit of work (``run(fn)``: ``fn(connection)`` inside one
transaction) on a pooled connection (psycopg 3 and psycopg_pool). A database that
restarts, or a network that drops packets, costs retries, not a rollout:

- every unit of work has a deadline (``GUARDRAIL_STATE_TIMEOUT``, 10 s): a connection
  that hangs past it (a frozen server still ACKs at the TCP level, so keepalives never
  fire) is severed from this side, which fails the statement;
- a failed unit of work is retried with backoff (50 ms doubling to 2 s) for as long as
  ``GUARDRAIL_STATE_RETRY`` (60 s, below the default 120 s lock lease) allows; past it,
  ``StoreUnavailable`` (exit 3: the rollout halts, nothing more is deployed) names the
  database, never its password;
- a unit of work that appends (``once=True``) commits a token with itself; retried after
  its connection died during COMMIT, it finds the token and returns the result it had,
  so a write that may or may not have committed is applied exactly once.

The URL is libpq's (``postgresql://user@host:5432/db?sslmode=require``), and libpq's
``PG*`` environment variables and password file fill in what it leaves out. A password
comes from the environment: ``PGPASSWORD``, a ``${env:NAME}`` in place of the
password (or anywhere in the URL), or a URL that itself came from the environment
(``GUARDRAIL_STATE``). It is added to the redactor and left out of ``location``.
"""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import threading
import time
import uuid
from contextlib import contextmanager
from typing import Any, Callable, Iterator, TypeVar

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg_pool import ConnectionPool, PoolTimeout

from guardrail.errors import ExitCode, StoreError, UsageError
from guardrail.secrets import Redactor

RETRY_ENV, TIMEOUT_ENV = "GUARDRAIL_STATE_RETRY", "GUARDRAIL_STATE_TIMEOUT"
DEFAULT_RETRY, DEFAULT_TIMEOUT = 60.0, 10.0
_ENV_REF = re.compile(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)\}")

T = TypeVar("T")

_REFUSALS = {"28P01", "28000", "3D000", "42501"}
"""SQLSTATEs no retry can fix: wrong password, no such role or database, no permission."""
_REFUSAL_WORDS = ("password authentication failed", "no password supplied", "does not exist",
                  "authentication failed", "permission denied")

# The pool logs its reconnection attempts as warnings; the retry loop reports the outage
# once, in its own words. Without a handler, Python would print them on stderr.
logging.getLogger("psycopg.pool").addHandler(logging.NullHandler())
logging.getLogger("psycopg.pool").propagate = False


class StoreUnavailable(StoreError):
    """The database did not answer within the retry bound: the rollout halts where it is."""

    exit_code = ExitCode.HALTED


def resolve_url(url: str, environ: dict[str, str] | None = None) -> tuple[str, set[str]]:
    """Replace ``${env:NAME}`` references; return the URL and the secrets it now holds."""
    env = os.environ if environ is None else environ
    secrets: set[str] = set()

    def value(match: re.Match) -> str:
        name = match.group(1)
        if name not in env:
            raise UsageError(f"the state URL names ${{env:{name}}}, which is not set")
        secrets.add(env[name])
        from urllib.parse import quote

        return quote(env[name], safe="")

    return _ENV_REF.sub(value, url), secrets


def literal_password(url: str) -> bool:
    """Whether a URL, as written, carries a password itself (not a ``${env:NAME}``)."""
    try:
        return bool(conninfo_to_dict(_ENV_REF.sub("", url)).get("password"))
    except psycopg.ProgrammingError:
        return False


def display(params: dict[str, Any], environ: dict[str, str] | None = None) -> str:
    """``postgresql://user@host:port/db``: where a database is, without its password.
    ``PG*`` variables fill what the URL leaves to them, as libpq would."""
    env = os.environ if environ is None else environ
    user = params.get("user") or env.get("PGUSER") or ""
    host = params.get("host") or params.get("hostaddr") or env.get("PGHOST") or "localhost"
    port = params.get("port") or env.get("PGPORT") or "5432"
    db = params.get("dbname") or env.get("PGDATABASE") or user
    return f"postgresql://{user + '@' if user else ''}{host}:{port}/{db}"


class _Watchdog:
    """Severs connections whose unit of work outlived its deadline. One thread per
    database, polling twice a second: arming costs a dict entry, not a timer thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._armed: dict[int, tuple[float, psycopg.Connection]] = {}
        self._thread: threading.Thread | None = None
        self._closed = threading.Event()

    def arm(self, conn: psycopg.Connection, seconds: float) -> int:
        key = id(conn)
        with self._lock:
            self._armed[key] = (time.monotonic() + seconds, conn)
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="guardrail-db-watchdog", daemon=True)
                self._thread.start()
        return key

    def disarm(self, key: int) -> None:
        with self._lock:
            self._armed.pop(key, None)

    def close(self) -> None:
        self._closed.set()

    def _loop(self) -> None:
        while not self._closed.wait(0.5):
            now = time.monotonic()
            with self._lock:
                for key, (deadline, conn) in list(self._armed.items()):
                    if deadline < now:
                        del self._armed[key]
                        _sever(conn)


def _sever(conn: psycopg.Connection) -> None:
    """Shut the connection's socket down under libpq: its pending read fails at once."""
    try:
        with socket.socket(fileno=os.dup(conn.pgconn.socket)) as sock:
            sock.shutdown(socket.SHUT_RDWR)
    except (OSError, psycopg.Error):
        pass


class Database:
    """A pool of connections to one database, and the retry loop around them."""

    def __init__(self, url: str, redactor: Redactor, *, environ: dict[str, str] | None = None,
                 retry_for: float | None = None, timeout: float | None = None, max_size: int = 4):
        env = os.environ if environ is None else environ
        self.redactor = redactor
        try:
            params = conninfo_to_dict(url)
        except psycopg.ProgrammingError as exc:
            raise UsageError(f"not a PostgreSQL URL: {redactor.redact(str(exc))}") from None
        password = params.get("password") or env.get("PGPASSWORD")
        if password:
            redactor.add({password})
        self.location = display(params, env)
        self.retry_for = float(retry_for if retry_for is not None else env.get(RETRY_ENV) or DEFAULT_RETRY)
        self.timeout = float(timeout if timeout is not None else env.get(TIMEOUT_ENV) or DEFAULT_TIMEOUT)
        extra = {"application_name": "guardrail"}
        if "connect_timeout" not in params:
            extra["connect_timeout"] = str(max(2, int(self.timeout / 2)))
        self._watchdog = _Watchdog()
        self._conninfo = conninfo = make_conninfo(url, **{k: v for k, v in extra.items() if k not in params})
        self._degraded = False
        self._probe(conninfo)
        # No server-side prepared statements (psycopg prepares a statement run 5 times):
        # they live in a session, which PgBouncer's transaction pooling does not keep.
        self._pool = ConnectionPool(conninfo, kwargs={"autocommit": True, "prepare_threshold": None}, min_size=1,
                                    max_size=max_size, open=False, timeout=self.timeout, name="guardrail",
                                    reconnect_timeout=1e9)
        self._pool.open(wait=False)

    def _probe(self, conninfo: str) -> None:
        """Connect once before pooling: the pool would hide why a connection fails. A
        refusal that waiting cannot fix (a wrong password, no such database or role) is
        a usage error at once; a server that does not answer is retried within the bound."""
        started = time.monotonic()
        delay = 0.05
        while True:
            try:
                psycopg.connect(conninfo).close()
                return
            except psycopg.OperationalError as exc:
                message = str(exc).strip()
                if exc.sqlstate in _REFUSALS or any(words in message for words in _REFUSAL_WORDS):
                    last = message.splitlines()[-1] if message else type(exc).__name__
                    raise UsageError(f"cannot use the state database {self.location}: "
                                     f"{self.redactor.redact(last)}") from None
                waited = time.monotonic() - started
                if waited + delay > self.retry_for:
                    raise self.unavailable(exc, waited) from None
                time.sleep(delay)
                delay = min(delay * 2, 2.0)

    def close(self) -> None:
        self._watchdog.close()
        self._pool.close(timeout=2)

    @contextmanager
    def _connection(self, deadline: float) -> Iterator[psycopg.Connection]:
        """A pooled connection; after a failure, a connection of its own until the pool
        has one to give again: the pool reconnects with a growing backoff (seconds apart
        after a long outage), and a database back sooner should be used sooner."""
        if self._degraded and self._pool.get_stats().get("pool_available", 0) > 0:
            self._degraded = False
        if self._degraded:
            conn = psycopg.connect(self._conninfo, autocommit=True, prepare_threshold=None)
            try:
                with self._armed(conn):
                    yield conn
            finally:
                conn.close()
            return
        wait = max(0.5, min(self.timeout, deadline - time.monotonic()))
        with self._pool.connection(timeout=wait) as conn, self._armed(conn):
            yield conn

    @contextmanager
    def _armed(self, conn: psycopg.Connection) -> Iterator[None]:
        key = self._watchdog.arm(conn, self.timeout)
        try:
            yield
        finally:
            self._watchdog.disarm(key)

    def run(self, fn: Callable[[psycopg.Connection], T], *, once: bool = False, single: bool = False) -> T:
        """``fn(connection)`` in one transaction, committed on return; retried through an
        outage (see the module docstring). ``once``: it appends, so a retry whose first
        attempt may have committed must not apply it again; its result must be JSON.
        ``single``: ``fn`` runs one statement, atomic on its own (no BEGIN and COMMIT to pay)."""
        token = uuid.uuid4().hex if once else None
        started = time.monotonic()
        deadline = started + self.retry_for
        delay, attempt = 0.05, 0
        while True:
            try:
                return self.attempt(fn, token, deadline, retried=attempt > 0, single=single)
            except (psycopg.OperationalError, psycopg.InterfaceError, PoolTimeout) as exc:
                self._degraded = True
                attempt += 1
                if time.monotonic() + delay > deadline:
                    raise self.unavailable(exc, time.monotonic() - started) from None
                time.sleep(delay)
                delay = min(delay * 2, 2.0)
            except psycopg.Error as exc:
                raise StoreError(f"the state database {self.location} refused a statement: "
                                 f"{self.redactor.redact(str(exc).strip())}") from None

    def attempt(self, fn: Callable[[psycopg.Connection], T], token: str | None, deadline: float, *,
                retried: bool, single: bool = False) -> T:
        """One try of ``run``. A retried write with a token first looks for the token: found,
        its first try committed, and the result it stored is returned instead."""
        with self._connection(deadline) as conn:
            if token is not None and retried:
                done = conn.execute("SELECT result FROM write_tokens WHERE token = %s", (token,)).fetchone()
                if done is not None:
                    return json.loads(done[0])
            if single and token is None:
                return fn(conn)
            with conn.transaction():
                result = fn(conn)
                if token is not None:
                    conn.execute("INSERT INTO write_tokens VALUES (%s, %s, %s)", (token, time.time(), json.dumps(result)))
            return result

    def unavailable(self, exc: BaseException, waited: float) -> StoreUnavailable:
        why = self.redactor.redact(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)
        return StoreUnavailable(
            f"the state database {self.location} did not answer for {waited:.1f} s ({why}); "
            f"stopped here with nothing more deployed: once it answers, continue with `guardrail resume ROLLOUT_ID`")

    def read(self, sql: str, args: Any = ()) -> list[dict[str, Any]]:
        """Rows as dicts."""
        def fn(conn: psycopg.Connection) -> list[dict[str, Any]]:
            cur = conn.execute(sql, args)
            if cur.description is None:
                return []
            names = [d.name for d in cur.description]
            return [dict(zip(names, row)) for row in cur.fetchall()]

        return self.run(fn, single=True)

    def tuples(self, sql: str, args: Any = ()) -> list[tuple]:
        return self.run(lambda conn: conn.execute(sql, args).fetchall(), single=True)

    def write(self, sql: str, args: Any = (), *, once: bool = False) -> int:
        """One statement; its row count."""
        return self.run(lambda conn: conn.execute(sql, args).rowcount, once=once, single=True)

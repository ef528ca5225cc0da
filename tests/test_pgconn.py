"""PostgreSQL connections through trouble (guardrail/state/pgconn.py): an append whose
COMMIT may or may not have happened is applied once; a server down, frozen or back is
told apart from a refusal no wait can fix; URLs are shown without their password."""

from __future__ import annotations

import time
from contextlib import closing

import pytest

from guardrail.errors import UsageError
from guardrail.secrets import Redactor
from guardrail.state.open import open_store
from guardrail.state.pgconn import Database, StoreUnavailable, display, literal_password, resolve_url


def test_an_append_retried_after_an_unanswered_commit_is_applied_once(postgres_url):
    with closing(open_store(postgres_url)) as store:
        db: Database = store.db

        def append(conn):
            return conn.execute("INSERT INTO events (rollout_id, at, kind, data) VALUES ('r', 1, 'k', '{}')"
                                " RETURNING seq").fetchone()[0]

        deadline = time.monotonic() + 10
        first = db.attempt(append, "token-1", deadline, retried=False)  # committed; say the answer was lost
        again = db.attempt(append, "token-1", deadline, retried=True)  # the retry finds its token
        assert again == first
        assert db.tuples("SELECT COUNT(*) FROM events") == [(1,)]
        other = db.attempt(append, "token-2", deadline, retried=True)  # a retry whose first try never committed
        assert other != first and db.tuples("SELECT COUNT(*) FROM events") == [(2,)]


def test_a_server_that_does_not_answer_is_retried_within_the_bound_then_named(postgres_server, postgres_url):
    with closing(open_store(postgres_url)) as store:
        store.db.retry_for, store.db.timeout = 1.0, 1.0
        postgres_server.stop()
        try:
            started = time.monotonic()
            with pytest.raises(StoreUnavailable, match=r"the state database postgresql://guardrail@127\.0\.0\.1:\d+/"
                                                       r"\w+ did not answer for [\d.]+ s") as gone:
                store.rollouts()
            assert time.monotonic() - started < 10 and gone.value.exit_code == 3
        finally:
            postgres_server.start()
        store.db.retry_for = 30.0
        assert store.rollouts() == []  # back: used again at once, not after the pool's backoff
        with postgres_server.paused():
            store.db.retry_for = 1.0
            started = time.monotonic()
            with pytest.raises(StoreUnavailable):  # frozen: the hung statement is cut at its deadline
                store.rollouts()
            assert time.monotonic() - started < 10
        store.db.retry_for = 30.0
        timer = postgres_server.pause_for(2)  # a blip shorter than the bound: nobody notices
        try:
            assert store.rollouts() == []
        finally:
            timer.join()


def test_urls_are_shown_without_their_password_and_env_references_are_resolved():
    assert display({"user": "ci", "host": "db.example", "password": "pw", "dbname": "guardrail"}, {}) == (
        "postgresql://ci@db.example:5432/guardrail")
    assert display({}, {"PGUSER": "me", "PGHOST": "h", "PGPORT": "6432"}) == "postgresql://me@h:6432/me"
    url, secrets = resolve_url("postgresql://ci:${env:DB_PW}@h/db", {"DB_PW": "p@ss/word"})
    assert url == "postgresql://ci:p%40ss%2Fword@h/db" and secrets == {"p@ss/word"}
    with pytest.raises(UsageError, match=r"\$\{env:NOPE\}, which is not set"):
        resolve_url("postgresql://ci:${env:NOPE}@h/db", {})
    assert literal_password("postgresql://ci:pw@h/db") and not literal_password("postgresql://ci:${env:X}@h/db")
    assert not literal_password("postgresql://ci@h/db")


def test_a_refusal_no_wait_can_fix_is_a_usage_error_at_once(postgres_server):
    started = time.monotonic()
    with pytest.raises(UsageError, match="does not exist"):
        Database(postgres_server.url("no_such_database"), Redactor(), retry_for=60)
    assert time.monotonic() - started < 10

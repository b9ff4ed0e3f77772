"""What breaks behind a transaction-pooling PgBouncer without ``db.pooler = pgbouncer``; that it holds with.

Two failures, both real: PgBouncer refuses the ``options`` startup parameter that carries the statement
timeout, and a statement psycopg prepared on one server session is missing in the next transaction, which
the pooler may run on another (``prepared statement "_pg3_0" does not exist``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from buttress.config import DbSettings
from buttress.db import Database
from buttress.errors import BackendUnavailable, DeadlineExceeded

REPEATS = 8  # past psycopg's prepare_threshold (5): the statement is prepared on the server by then


@pytest.fixture
def held(fresh_pair: tuple[str, str]) -> Iterator[psycopg.Connection[object]]:
    """A client of the pooler, to hold a server connection in an open transaction when a test says so."""
    with psycopg.connect(fresh_pair[0], prepare_threshold=None, autocommit=True) as connection:
        yield connection


def _repeat_then_move(db: Database, held: psycopg.Connection[object]) -> None:
    """Run one statement REPEATS times on one pooled connection, then again while ``held`` holds the server
    session it ran on (the pooler's most recently used one), so the next run gets another server session."""
    with db.engine.connect() as connection:
        for n in range(REPEATS):
            assert connection.execute(text("SELECT CAST(:n AS integer) + 1"), {"n": n}).scalar() == n + 1
            connection.commit()
        held.execute("BEGIN")
        held.execute("SELECT 1")
        try:
            assert connection.execute(text("SELECT CAST(:n AS integer) + 1"), {"n": 41}).scalar() == 42
            connection.commit()
        finally:
            held.execute("COMMIT")


def test_without_the_setting_prepared_statements_break_through_the_pooler(
    fresh_pair: tuple[str, str], held: psycopg.Connection[object]
) -> None:
    db = Database(fresh_pair[0], settings=DbSettings(pooler="none", statement_timeout=None))
    try:
        with pytest.raises(DBAPIError, match=r'prepared statement "_pg3_\d+" does not exist'):
            _repeat_then_move(db, held)
    finally:
        db.close()


def test_with_the_setting_nothing_is_prepared_and_it_holds(
    fresh_pair: tuple[str, str], held: psycopg.Connection[object]
) -> None:
    db = Database(fresh_pair[0], settings=DbSettings(pooler="pgbouncer"))
    try:
        _repeat_then_move(db, held)
    finally:
        db.close()


def test_without_the_setting_the_statement_timeout_is_refused_by_the_pooler(
    fresh_pair: tuple[str, str],
) -> None:
    db = Database(fresh_pair[0], settings=DbSettings(pooler="none", statement_timeout=5))
    try:
        with pytest.raises(BackendUnavailable, match="unsupported startup parameter: options"):
            db.check()
    finally:
        db.close()


def test_with_the_setting_the_statement_timeout_holds_per_transaction_and_leaks_nowhere(
    fresh_pair: tuple[str, str], held: psycopg.Connection[object]
) -> None:
    db = Database(fresh_pair[0], settings=DbSettings(pooler="pgbouncer", statement_timeout=0.1))

    async def slow_async() -> None:
        async with db.asession() as session:
            await session.execute(text("SELECT pg_sleep(2)"))

    try:
        with db.session() as session:
            assert session.execute(text("SHOW statement_timeout")).scalar() == "100ms"
        with pytest.raises(DeadlineExceeded), db.session() as session:
            session.execute(text("SELECT pg_sleep(2)"))
        with pytest.raises(DeadlineExceeded):
            asyncio.run(slow_async())
        # SET LOCAL ended with each transaction: another client of the same server sessions has the default
        assert held.execute("SHOW statement_timeout").fetchone() == ("0",)
    finally:
        db.close()


def test_the_settings_take_the_pooler_and_a_direct_listen_url_and_mask_its_password() -> None:
    from pydantic import ValidationError as SettingsError

    from buttress.config import JobsSettings

    assert DbSettings().pooler == "none"
    with pytest.raises(SettingsError, match="pooler"):
        DbSettings(pooler="pgpool")  # type: ignore[arg-type]
    jobs = JobsSettings(listen_url="postgresql://app:hunter2@10.0.0.1:5432/app")
    assert "hunter2" not in repr(jobs)
    with pytest.raises(SettingsError, match="the server, not the pooler") as caught:
        JobsSettings(listen_url="redis://app:hunter2@10.0.0.1:6379/0")
    assert "hunter2" not in str(caught.value)

"""The Database on SQLite and PostgreSQL: engines, per-connection settings, error mapping, retried units."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, make_url, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from buttress.config import DbSettings, Settings, reset_settings
from buttress.db import DEFAULT_URL, Database
from buttress.errors import BackendUnavailable, ConflictError, DeadlineExceeded, ValidationError
from tests._ports import free_port
from tests.db._subject import KINDS, MODES, Subject, open_database

PASSWORD = "s3cret-Pa55word"


def _subject(request: pytest.FixtureRequest, tmp_path: Path, kind: str, mode: str) -> Iterator[Subject]:
    made = Subject(kind, mode, open_database(kind, tmp_path, request), asyncio.new_event_loop())
    try:
        yield made
    finally:
        made.close()


@pytest.fixture(params=[(k, m) for k in KINDS for m in MODES], ids=lambda p: f"{p[0]}-{p[1]}")
def subject(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Subject]:
    """Each database, sync and async."""
    yield from _subject(request, tmp_path, *request.param)


@pytest.fixture(params=MODES)
def sqlite_subject(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Subject]:
    """SQLite alone, sync and async: what only SQLite has."""
    yield from _subject(request, tmp_path, "sqlite", request.param)


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_both_engines_connect(subject: Subject) -> None:
    assert subject.execute("SELECT 1") == [(1,)]
    assert subject.db.info()["backend"] == subject.kind
    if subject.mode == "sync":
        subject.db.check()
    else:
        subject.run(subject.db.acheck())


def test_sqlite_connections_have_wal_busy_timeout_and_foreign_keys(sqlite_subject: Subject) -> None:
    subject = sqlite_subject
    assert subject.execute("PRAGMA journal_mode") == [("wal",)]
    assert subject.execute("PRAGMA foreign_keys") == [(1,)]
    assert subject.execute("PRAGMA busy_timeout") == [(5000,)]
    parent, child = subject.table("parent"), subject.table("child")
    subject.execute(f"CREATE TABLE {parent} (id INTEGER PRIMARY KEY)")
    subject.execute(
        f"CREATE TABLE {child} (id INTEGER PRIMARY KEY, parent_id INTEGER REFERENCES {parent}(id))"
    )
    with pytest.raises(Exception, match="FOREIGN KEY constraint failed"):
        subject.execute(f"INSERT INTO {child} (id, parent_id) VALUES (1, 42)")


def run_then_close(db: Database, sql: str) -> None:
    """Run ``sql`` through ``db.asession()`` on a fresh event loop, then close the pools on that loop."""

    async def run() -> None:
        try:
            async with db.asession() as session:
                await session.execute(text(sql))
        finally:
            await db.aclose()

    asyncio.run(run())


def test_statement_timeout_is_deadline_exceeded(database_url: str) -> None:
    """PostgreSQL only: SQLite has no statement timeout."""
    db = Database(database_url, settings=DbSettings(statement_timeout=0.1))
    try:
        with pytest.raises(DeadlineExceeded) as caught, db.session() as session:
            session.execute(text("SELECT pg_sleep(2)"))
        assert caught.value.error_code == "statement_timeout"
        assert caught.value.context["sqlstate"] == "57014"

        with pytest.raises(DeadlineExceeded):
            run_then_close(db, "SELECT pg_sleep(2)")
        assert db.info()["statement_timeout"] == 0.1
    finally:
        db.close()


def test_the_urls_own_options_are_kept_beside_the_statement_timeout(database_url: str) -> None:
    """``?options=`` in the URL used to be replaced by the timeout's own ``options`` connect argument."""
    url = make_url(database_url).update_query_dict({"options": "-c search_path=buttress_opts,public"})
    db = Database(url, settings=DbSettings(statement_timeout=2.5))
    try:
        with db.session() as session:
            shown = session.execute(
                text("SELECT current_setting('search_path'), current_setting('statement_timeout')")
            )
            assert tuple(shown.one()) == ("buttress_opts,public", "2500ms")
    finally:
        db.close()


def test_unique_violation_is_a_conflict_naming_the_constraint(subject: Subject) -> None:
    items = subject.table("items")
    constraint = f"uq_{items}_name"
    subject.execute(
        f"CREATE TABLE {items} (id INTEGER PRIMARY KEY, name TEXT, CONSTRAINT {constraint} UNIQUE (name))"
    )
    subject.execute(f"INSERT INTO {items} (id, name) VALUES (1, 'a')")
    with pytest.raises(ConflictError) as caught:
        subject.execute(f"INSERT INTO {items} (id, name) VALUES (2, 'a')")
    # SQLite reports the columns, not the constraint's name.
    expected = constraint if subject.kind == "postgresql" else f"{items}.name"
    assert caught.value.context["constraint"] == expected
    assert expected in caught.value.message
    assert caught.value.error_code == "unique_violation"
    assert subject.execute(f"SELECT count(*) FROM {items}") == [(1,)]  # the failed insert rolled back


def test_an_unreachable_postgresql_is_backend_unavailable_without_the_password() -> None:
    db = Database(
        f"postgresql://app:{PASSWORD}@127.0.0.1:{free_port()}/app",
        settings=DbSettings(transaction_attempts=2),
    )
    try:
        with pytest.raises(BackendUnavailable) as plain, db.session() as session:
            session.execute(text("SELECT 1"))
        with pytest.raises(BackendUnavailable) as retried:
            db.transaction(lambda session: session.execute(text("SELECT 1")))
        assert retried.value.context["attempts"] == 2

        with pytest.raises(BackendUnavailable) as asynchronous:
            run_then_close(db, "SELECT 1")
        for error in (plain.value, retried.value, asynchronous.value):
            assert error.backend == "postgresql"
            shown = f"{error} {error!r} {error.to_problem()} {error.context}"
            assert PASSWORD not in shown
        assert PASSWORD not in repr(db)
        assert PASSWORD not in str(db.info())
    finally:
        db.close()


def test_an_sqlite_file_that_cannot_be_opened_is_backend_unavailable(tmp_path: Path) -> None:
    db = Database(
        f"sqlite:///{tmp_path / 'no-such-dir' / 'x.db'}", settings=DbSettings(transaction_attempts=1)
    )
    with pytest.raises(BackendUnavailable) as caught:
        db.check()
    assert caught.value.backend == "sqlite"


def test_a_conflicting_unit_runs_again_as_a_whole(subject: Subject) -> None:
    """The first attempt reads, another connection commits a write to the row, the attempt's own write
    fails (PostgreSQL 40001, SQLite busy snapshot); the unit runs again and its result counts once."""
    counters = subject.table("counters")
    subject.execute(f"CREATE TABLE {counters} (id INTEGER PRIMARY KEY, n INTEGER NOT NULL)")
    subject.execute(f"INSERT INTO {counters} (id, n) VALUES (1, 0)")
    other = create_engine(subject.db.engine.url, isolation_level="AUTOCOMMIT")
    calls: list[int] = []
    select = text(f"SELECT n FROM {counters} WHERE id = 1")
    update = text(f"UPDATE {counters} SET n = :n WHERE id = 1")

    def interfere() -> None:
        calls.append(len(calls) + 1)
        if len(calls) == 1:
            with other.connect() as connection:
                connection.execute(text(f"UPDATE {counters} SET n = n + 100 WHERE id = 1"))

    def unit(session: Session) -> int:
        n = session.execute(select).scalar_one()
        interfere()
        session.execute(update, {"n": n + 1})
        return int(n) + 1

    async def aunit(session: AsyncSession) -> int:
        n = (await session.execute(select)).scalar_one()
        interfere()
        await session.execute(update, {"n": n + 1})
        return int(n) + 1

    try:
        assert subject.transaction(unit, aunit, isolation="SERIALIZABLE") == 101
    finally:
        other.dispose()
    assert calls == [1, 2]
    assert subject.execute(f"SELECT n FROM {counters}") == [(101,)]


def test_eight_threads_incrementing_one_row_lose_nothing(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    db = open_database(kind, tmp_path, request, transaction_attempts=200, pool_size=8)
    table = f"counter_{threading.get_ident()}_{id(db)}"
    workers, per_worker = 8, 25
    errors: list[BaseException] = []
    attempts = [0]
    lock = threading.Lock()

    def increment(session: Session) -> None:
        with lock:
            attempts[0] += 1
        n = session.execute(text(f"SELECT n FROM {table} WHERE id = 1")).scalar_one()
        session.execute(text(f"UPDATE {table} SET n = :n WHERE id = 1"), {"n": n + 1})

    def work() -> None:
        for _ in range(per_worker):
            try:
                db.transaction(increment, isolation="SERIALIZABLE")
            except BaseException as exc:  # every surfaced error is counted
                errors.append(exc)

    with db.session() as session:
        session.execute(text(f"CREATE TABLE {table} (id INTEGER PRIMARY KEY, n INTEGER NOT NULL)"))
        session.execute(text(f"INSERT INTO {table} (id, n) VALUES (1, 0)"))
    try:
        threads = [threading.Thread(target=work) for _ in range(workers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        with db.session() as session:
            assert session.execute(text(f"SELECT n FROM {table}")).scalar_one() == workers * per_worker
        assert attempts[0] >= workers * per_worker
    finally:
        with db.session() as session:
            session.execute(text(f"DROP TABLE IF EXISTS {table}"))
        db.close()


def test_a_terminated_connection_is_retried(database_url: str) -> None:
    """PostgreSQL only: another session kills the unit's backend; the unit runs again on a new connection."""
    db = Database(database_url)
    other = create_engine(db.engine.url, isolation_level="AUTOCOMMIT")
    calls: list[Any] = []

    def unit(session: Session) -> int:
        pid = session.execute(text("SELECT pg_backend_pid()")).scalar_one()
        calls.append(pid)
        if len(calls) == 1:
            with other.connect() as connection:
                connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        return int(session.execute(text("SELECT 7")).scalar_one())

    try:
        assert db.transaction(unit) == 7
        assert len(calls) == 2
        assert calls[0] != calls[1]  # the second attempt ran on a new connection
    finally:
        other.dispose()
        db.close()


def test_a_non_retryable_error_is_raised_at_once(subject: Subject) -> None:
    calls: list[int] = []

    def unit(session: Session) -> None:
        calls.append(1)
        session.execute(text("SELECT * FROM no_such_table_anywhere"))

    async def aunit(session: AsyncSession) -> None:
        calls.append(1)
        await session.execute(text("SELECT * FROM no_such_table_anywhere"))

    with pytest.raises(Exception, match="no_such_table_anywhere"):
        subject.transaction(unit, aunit)
    assert calls == [1]


def test_urls_resolve_to_psycopg_and_aiosqlite() -> None:
    db = Database("postgres://app:pw@db.example:5432/app")
    assert db.engine.url.drivername == "postgresql+psycopg"
    assert db.async_engine.url.drivername == "postgresql+psycopg_async"
    lite = Database("sqlite+aiosqlite:///x.db")
    assert (lite.engine.url.drivername, lite.async_engine.url.drivername) == (
        "sqlite+pysqlite",
        "sqlite+aiosqlite",
    )
    assert DEFAULT_URL == "sqlite:///buttress.db"
    assert Database.from_settings(Settings(database_url=None)).engine.url.database == "buttress.db"


def test_caller_mistakes_name_the_field() -> None:
    with pytest.raises(ValidationError) as caught:
        Database("mysql://app:pw@127.0.0.1/app")
    assert caught.value.field == "url"
    assert "mysql" in caught.value.message
    with pytest.raises(ValidationError) as bad_isolation:
        Database("sqlite://").transaction(lambda s: None, isolation="SNAPSHOT")  # type: ignore[arg-type]
    assert bad_isolation.value.field == "isolation"


def test_without_a_url_the_process_settings_decide(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("BUTTRESS_DATABASE_URL", f"sqlite:///{tmp_path / 'env.db'}")
    monkeypatch.setenv("BUTTRESS_DB__POOL_SIZE", "3")
    reset_settings()
    try:
        db = Database()
        assert db.engine.url.database == str(tmp_path / "env.db")
        assert db.settings.pool_size == 3
        db.check()
        db.close()
        assert (tmp_path / "env.db").exists()
    finally:
        reset_settings()


@pytest.mark.parametrize("kind", KINDS)
def test_a_sync_close_also_closes_the_async_pools_connections(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    db = open_database(kind, tmp_path, request)

    async def use() -> None:
        async with db.asession() as session:
            await session.execute(text("SELECT 1"))

    asyncio.run(use())  # the loop that opened the connection is gone by now
    pool = db.async_engine.sync_engine.pool
    assert pool.checkedin() == 1
    db.close()
    assert pool.checkedin() == 0
    assert db.engine.pool.checkedin() == 0

"""The query-result cache and the after-commit write announcement, on SQLite and PostgreSQL, sync and async.

Stale, defined: a cached read that starts after a writer's ``db.session()`` block (or ``db.transaction()``
call) returned and does not see that write. The race tests count them across 4 real processes (PostgreSQL
+ Redis) and across threads of one process (memory cache).
"""

from __future__ import annotations

import asyncio
import inspect
import multiprocessing
import os
import re
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import (
    JSON,
    Column,
    Date,
    DateTime,
    Integer,
    Interval,
    LargeBinary,
    MetaData,
    Numeric,
    String,
    Table,
    Time,
    Uuid,
    create_engine,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from buttress.cache import Cache, MsgpackSerializer, RedisBackend, TieredBackend
from buttress.config import DbSettings
from buttress.db import Database, QueryCache, Rows
from buttress.db._writes import note_written, tables_written_by
from buttress.errors import ValidationError
from buttress.observe.metrics import MetricsRegistry
from tests._ports import free_port
from tests.db._subject import KINDS, MODES, Subject, open_database, subjects

DOCS = Path(__file__).resolve().parents[2] / "docs" / "db-query-cache.md"


class Cached:
    """A Subject with a counter table and the query cache on a given cache."""

    def __init__(self, subject: Subject, cache: Cache) -> None:
        self.s = subject
        self.db = subject.db
        self.db.query_cache.use(cache)
        self.name = subject.table("counter")
        subject.execute(f"CREATE TABLE {self.name} (id INTEGER PRIMARY KEY, n INTEGER NOT NULL)")
        subject.execute(f"INSERT INTO {self.name} (id, n) VALUES (1, 0), (2, 100)")
        self.table = Table(
            self.name, MetaData(), Column("id", Integer, primary_key=True), Column("n", Integer)
        )
        self.query = select(self.table.c.n).where(self.table.c.id == 1)

    def cached(self, stmt: Any = None, **options: Any) -> Rows:
        stmt = self.query if stmt is None else stmt
        if self.s.mode == "sync":
            return self.db.cached(stmt, **options)
        return self.s.run(self.db.acached(stmt, **options))

    def version(self, table: str | None = None) -> Any:
        qc = self.db.query_cache
        return qc.cache.get(qc._prefix + "v:" + (table or self.name).lower())

    def counts(self) -> tuple[int, int]:
        info = self.db.query_cache.info()
        return info["hits"], info["misses"]


@pytest.fixture(params=[(k, m) for k in KINDS for m in MODES], ids=lambda p: f"{p[0]}-{p[1]}")
def subject(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Subject]:
    yield from subjects(request, tmp_path, *request.param)


@pytest.fixture
def qc(subject: Subject) -> Cached:
    return Cached(subject, Cache())


# -- what counts as a write ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sql", "tables"),
    [
        ("INSERT INTO items (a) VALUES (1)", {"items"}),
        ('insert into "Public"."Items" values (1)', {"items"}),
        ("INSERT OR REPLACE INTO t VALUES (1)", {"t"}),
        ("REPLACE INTO t VALUES (1)", {"t"}),
        ("UPDATE items SET a = 1", {"items"}),
        ("UPDATE ONLY items AS i SET a = 1 FROM other o WHERE o.id = i.id", {"items"}),
        ("update or ignore [items] set a = 1", {"items"}),
        ("DELETE FROM sch.items WHERE id = 1", {"items"}),
        ("MERGE INTO items USING src ON items.id = src.id WHEN MATCHED THEN UPDATE SET a = 1", {"items"}),
        ("TRUNCATE TABLE a, b.c RESTART IDENTITY", {"a", "c"}),
        ("TRUNCATE ONLY a", {"a"}),
        ("COPY items (a, b) FROM STDIN WITH (FORMAT binary)", {"items"}),
        ("COPY items TO STDOUT", set()),
        ("CREATE TABLE IF NOT EXISTS x (id int)", {"x"}),
        ("CREATE TEMP TABLE x AS SELECT 1", {"x"}),
        ("ALTER TABLE x ADD COLUMN y int", {"x"}),
        ("DROP TABLE IF EXISTS x, y", {"x", "y"}),
        ("CREATE UNIQUE INDEX CONCURRENTLY ix ON items (a)", {"items"}),
        ("WITH moved AS (DELETE FROM a RETURNING *) INSERT INTO b SELECT * FROM moved", {"a", "b"}),
        ("SELECT * FROM items FOR UPDATE OF items SKIP LOCKED", set()),
        ("SELECT last_update FROM items", set()),
        ("WITH x AS (SELECT 1) SELECT * FROM x FOR UPDATE", set()),
        ("PRAGMA journal_mode = WAL", set()),
        ("BEGIN", set()),
    ],
)
def test_tables_written_by_parses_text_dml_and_ddl(sql: str, tables: set[str]) -> None:
    assert tables_written_by(sql) == tables


# -- hits and invalidation after commit ---------------------------------------------------------------


def test_hit_then_invalidated_by_a_committed_write(qc: Cached) -> None:
    assert qc.cached() == [(0,)]
    assert qc.cached() == [(0,)]
    assert qc.counts() == (1, 1)
    qc.s.execute(f"UPDATE {qc.name} SET n = 5 WHERE id = 1")
    assert qc.cached() == [(5,)]
    assert qc.counts() == (1, 2)
    other = select(qc.table.c.n).where(qc.table.c.id == 2)  # another parameter: another entry
    assert qc.cached(other) == [(100,)]
    assert qc.cached() == [(5,)]
    assert qc.counts() == (2, 3)


def test_announced_after_commit_and_never_before(qc: Cached) -> None:
    """A reader during an open write transaction caches the old value under the old version only; after
    the commit returned, the version is new and the next read sees the write."""
    assert qc.cached() == [(0,)]
    before = qc.version()
    seen: dict[str, Any] = {}

    def reader() -> None:  # another thread: not inside the writer's block
        seen["rows"] = qc.db.cached(qc.query)
        seen["version"] = qc.version()

    def during() -> None:
        thread = threading.Thread(target=reader)
        thread.start()
        thread.join()

    if qc.s.mode == "sync":
        with qc.db.session() as session:
            session.execute(update(qc.table).where(qc.table.c.id == 1).values(n=1))
            during()
            assert qc.version() == before
    else:

        async def write() -> None:
            async with qc.db.asession() as session:
                await session.execute(update(qc.table).where(qc.table.c.id == 1).values(n=1))
                await asyncio.to_thread(during)
                assert qc.version() == before

        qc.s.run(write())
    assert seen == {"rows": [(0,)], "version": before}
    assert qc.version() != before
    assert qc.cached() == [(1,)]


def test_rollback_announces_nothing(qc: Cached) -> None:
    assert qc.cached() == [(0,)]
    before = qc.version()

    def unit(session: Session) -> None:
        session.execute(update(qc.table).values(n=9))
        raise RuntimeError("undo")

    async def aunit(session: AsyncSession) -> None:
        await session.execute(update(qc.table).values(n=9))
        raise RuntimeError("undo")

    with pytest.raises(RuntimeError, match="undo"):
        qc.s.transaction(unit, aunit)
    assert qc.version() == before
    assert qc.cached() == [(0,)]
    assert qc.counts() == (1, 1)


def test_savepoint_rollback_forgets_the_tables_written_after_it(qc: Cached) -> None:
    other = qc.s.table("other")
    qc.s.execute(f"CREATE TABLE {other} (id INTEGER PRIMARY KEY)")
    counter_before, other_before = qc.version(), qc.version(other)

    def unit(session: Session) -> None:
        nested = session.begin_nested()
        session.execute(text(f"INSERT INTO {other} (id) VALUES (1)"))
        nested.rollback()
        session.execute(update(qc.table).values(n=3))

    async def aunit(session: AsyncSession) -> None:
        nested = await session.begin_nested()
        await session.execute(text(f"INSERT INTO {other} (id) VALUES (1)"))
        await nested.rollback()
        await session.execute(update(qc.table).values(n=3))

    qc.s.transaction(unit, aunit)
    assert qc.version(other) == other_before
    assert qc.version() != counter_before


class _Base(DeclarativeBase):
    pass


def _orm_class(name: str) -> type[Any]:
    return type(
        f"Counter_{name}",
        (_Base,),
        {
            "__tablename__": name,
            "__annotations__": {"id": Mapped[int], "n": Mapped[int]},
            "id": mapped_column(primary_key=True),
            "n": mapped_column(),
        },
    )


def _raw_write(session: Session, sql: str, tables: list[str]) -> None:
    """A write SQLAlchemy never sees (straight on the driver's cursor), noted by hand."""
    connection = session.connection()
    cursor = connection.connection.cursor()
    cursor.execute(sql)
    cursor.close()
    note_written(connection, tables)


@pytest.mark.parametrize("via", ["orm", "core", "text", "driver_sql", "note_written"])
def test_every_kind_of_write_invalidates(qc: Cached, via: str) -> None:
    assert qc.cached() == [(0,)]
    sql = f"UPDATE {qc.name} SET n = 7 WHERE id = 1"
    orm = _orm_class(qc.name) if via == "orm" else None

    def unit(session: Session) -> None:
        if via == "orm":
            session.get(orm, 1).n = 7  # type: ignore[union-attr]
        elif via == "core":
            session.execute(update(qc.table).where(qc.table.c.id == 1).values(n=7))
        elif via == "text":
            session.execute(text(sql))
        elif via == "driver_sql":
            session.connection().exec_driver_sql(sql)
        else:
            _raw_write(session, sql, [qc.name])

    async def aunit(session: AsyncSession) -> None:
        if via == "orm":
            row = await session.get(orm, 1)  # type: ignore[arg-type]
            row.n = 7  # type: ignore[union-attr]
        elif via == "core":
            await session.execute(update(qc.table).where(qc.table.c.id == 1).values(n=7))
        elif via == "text":
            await session.execute(text(sql))
        elif via == "driver_sql":
            await (await session.connection()).exec_driver_sql(sql)
        else:
            await session.run_sync(_raw_write, sql, [qc.name])

    try:
        qc.s.transaction(unit, aunit)
    finally:
        if orm is not None:
            _Base.metadata.remove(orm.__table__)
            _Base.registry.dispose()
    assert qc.cached() == [(7,)]


def test_a_join_is_invalidated_by_either_table(qc: Cached) -> None:
    names = qc.s.table("names")
    qc.s.execute(f"CREATE TABLE {names} (id INTEGER PRIMARY KEY, name VARCHAR(20))")
    qc.s.execute(f"INSERT INTO {names} (id, name) VALUES (1, 'one')")
    named = Table(names, MetaData(), Column("id", Integer, primary_key=True), Column("name", String(20)))
    joined = (
        select(named.c.name, qc.table.c.n)
        .join(qc.table, qc.table.c.id == named.c.id)
        .where(named.c.id.in_(select(func.min(named.c.id)).scalar_subquery()))
    )
    assert qc.cached(joined) == [("one", 0)]
    qc.s.execute(f"UPDATE {names} SET name = 'uno'")
    assert qc.cached(joined) == [("uno", 0)]
    qc.s.execute(f"UPDATE {qc.name} SET n = 2 WHERE id = 1")
    assert qc.cached(joined) == [("uno", 2)]
    assert qc.cached(joined) == [("uno", 2)]
    assert qc.counts() == (1, 3)


def test_text_and_views_take_explicit_tables(qc: Cached) -> None:
    view = qc.s.table("view")
    qc.s.execute(f"CREATE VIEW {view} AS SELECT id, n * 2 AS doubled FROM {qc.name}")
    qc.s.tables.remove(view)  # dropped as a view below, before its table
    try:
        stmt = text(f"SELECT doubled FROM {view} WHERE id = :id")
        with pytest.raises(ValidationError, match="tables=") as caught:
            qc.cached(stmt, params={"id": 1})
        assert caught.value.field == "tables"
        assert qc.cached(stmt, params={"id": 1}, tables=[qc.name]) == [(0,)]
        assert qc.cached(stmt, params={"id": 2}, tables=[qc.name]) == [(200,)]
        qc.s.execute(f"UPDATE {qc.name} SET n = 4 WHERE id = 1")
        assert qc.cached(stmt, params={"id": 1}, tables=[qc.name]) == [(8,)]
        # an explicit table adds to the ones found: a write to it invalidates a select of another
        extra = select(qc.table.c.n).where(qc.table.c.id == 2)
        assert qc.cached(extra, tables=["elsewhere"]) == [(100,)]
        if qc.s.mode == "sync":
            qc.db.query_cache.invalidate("elsewhere")
        else:
            qc.s.run(qc.db.query_cache.ainvalidate("elsewhere"))
        hits, misses = qc.counts()
        assert qc.cached(extra, tables=["elsewhere"]) == [(100,)]
        assert qc.counts() == (hits, misses + 1)
    finally:
        qc.s.execute(f"DROP VIEW IF EXISTS {view}")


def test_reads_inside_a_written_transaction_bypass_the_cache(qc: Cached) -> None:
    assert qc.cached() == [(0,)]
    inside: list[Any] = []

    def unit(session: Session) -> None:
        inside.append(qc.db.cached(qc.query))  # not written yet: a hit
        session.execute(update(qc.table).where(qc.table.c.id == 1).values(n=11))
        inside.append(qc.db.cached(qc.query))  # its own write, uncached
        raise RuntimeError("undo")

    async def aunit(session: AsyncSession) -> None:
        inside.append(await qc.db.acached(qc.query))
        await session.execute(update(qc.table).where(qc.table.c.id == 1).values(n=11))
        inside.append(await qc.db.acached(qc.query))
        raise RuntimeError("undo")

    with pytest.raises(RuntimeError, match="undo"):
        qc.s.transaction(unit, aunit)
    assert inside == [[(0,)], [(11,)]]
    assert qc.cached() == [(0,)]  # the uncommitted 11 was never stored
    assert qc.counts() == (2, 1)
    assert qc.db.query_cache.info()["bypassed"] == 1


def test_unflushed_orm_changes_count_as_written(qc: Cached) -> None:
    orm = _orm_class(qc.name)
    try:
        if qc.s.mode == "sync":
            with qc.db.session() as session:
                session.add(orm(id=3, n=33))
                rows = qc.db.cached(select(qc.table.c.n).where(qc.table.c.id == 3))
                session.rollback()
        else:

            async def run() -> Rows:
                async with qc.db.asession() as session:
                    session.add(orm(id=3, n=33))
                    found = await qc.db.acached(select(qc.table.c.n).where(qc.table.c.id == 3))
                    await session.rollback()
                    return found

            rows = qc.s.run(run())
    finally:
        _Base.metadata.remove(orm.__table__)
        _Base.registry.dispose()
    assert rows == [(33,)]
    assert qc.db.query_cache.info()["bypassed"] == 1


def test_raw_engine_transactions_announce_too(qc: Cached) -> None:
    before = qc.version()
    if qc.s.mode == "sync":
        with qc.db.engine.begin() as connection:
            connection.execute(update(qc.table).values(n=1))
        assert qc.version() != before  # before the block returned
        with qc.db.engine.connect() as connection:  # two commits on one connection
            connection.execute(update(qc.table).values(n=2))
            connection.commit()
            middle = qc.version()
            connection.execute(text("SELECT 1"))  # the next begin announces the first commit
            assert qc.version() != middle
        return

    async def write() -> None:
        async with qc.db.async_engine.begin() as connection:
            await connection.execute(update(qc.table).values(n=1))
        for _ in range(10_000):  # a task on this loop: wait for it, yielding, with a bound
            if qc.version() != before:
                return
            await asyncio.sleep(0)
        raise AssertionError("the raw async commit was never announced")

    qc.s.run(write())


def test_on_commit_listeners_hear_each_committed_transaction_once(subject: Subject) -> None:
    heard: list[frozenset[str]] = []
    aheard: list[frozenset[str]] = []

    async def alistener(tables: frozenset[str]) -> None:
        aheard.append(tables)

    def broken(_tables: frozenset[str]) -> None:
        raise RuntimeError("listener bug")

    remove_broken = subject.db.on_commit(broken)
    remove = subject.db.on_commit(heard.append, alistener)
    name = subject.table("Heard")
    subject.execute(f"CREATE TABLE {name} (id INTEGER PRIMARY KEY)")
    subject.execute(f"INSERT INTO {name} (id) VALUES (1)")
    subject.execute(f"SELECT * FROM {name}")
    remove()
    remove_broken()
    subject.execute(f"DELETE FROM {name}")
    expected = [frozenset({name.lower()})] * 2
    assert (heard, aheard) == ((expected, []) if subject.mode == "sync" else ([], expected))


@pytest.fixture(params=MODES)
def pg_qc(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Cached]:
    """PostgreSQL alone, sync and async: what needs a server."""
    for made in subjects(request, tmp_path, "postgresql", request.param):
        yield Cached(made, Cache())


def test_invalidation_survives_killed_connections(pg_qc: Cached) -> None:
    """django-cachalot#269: after a database restart invalidation stopped. Every pooled connection is
    killed by the server (what a restart does; PostgreSQL only); the next write still invalidates."""
    qc = pg_qc
    label = f"qc_{uuid.uuid4().hex[:8]}"  # only this test's connections: others share the server
    own = Subject(
        qc.s.kind,
        qc.s.mode,
        Database(qc.db.urls.sync.update_query_dict({"application_name": label}), settings=qc.db.settings),
        asyncio.new_event_loop(),
    )
    try:
        mine = Cached.__new__(Cached)
        mine.__dict__.update(qc.__dict__, s=own, db=own.db)
        own.db.query_cache.use(qc.db.query_cache.cache)
        assert mine.cached() == [(0,)]
        mine.cached()
        killed = qc.s.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = :label",
            label=label,
        )
        assert killed[0][0] >= 1
        own.execute(f"UPDATE {qc.name} SET n = 6 WHERE id = 1")  # pre-ping reconnects
        assert mine.cached() == [(6,)]
        assert qc.cached() == [(6,)]  # the other Database, sharing the cache, sees it too
    finally:
        own.close()


def test_a_write_killed_mid_transaction_is_retried_and_announced_once_committed(pg_qc: Cached) -> None:
    """PostgreSQL only: the unit's backend is killed after its UPDATE; the dead attempt announces nothing
    it could not have committed, and the retried attempt's commit invalidates."""
    qc = pg_qc
    assert qc.cached() == [(0,)]
    pids: list[int] = []

    def kill(pid: int) -> None:
        if len(pids) == 1:
            killer = create_engine(qc.db.urls.sync, isolation_level="AUTOCOMMIT")
            try:
                with killer.connect() as connection:
                    connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
            finally:
                killer.dispose()

    def unit(session: Session) -> None:
        pids.append(session.execute(text("SELECT pg_backend_pid()")).scalar_one())
        session.execute(update(qc.table).where(qc.table.c.id == 1).values(n=qc.table.c.n + 1))
        kill(pids[-1])
        session.execute(text("SELECT 1"))

    async def aunit(session: AsyncSession) -> None:
        pids.append((await session.execute(text("SELECT pg_backend_pid()"))).scalar_one())
        await session.execute(update(qc.table).where(qc.table.c.id == 1).values(n=qc.table.c.n + 1))
        await asyncio.to_thread(kill, pids[-1])
        await session.execute(text("SELECT 1"))

    qc.s.transaction(unit, aunit)
    assert len(pids) == 2
    assert qc.cached() == [(1,)]


def test_a_tiered_cache_reads_versions_from_its_shared_store(
    subject: Subject, request: pytest.FixtureRequest, redis_url: str, redis_client: object
) -> None:
    """Two Databases (as two processes would) with a tiered cache each and no bus to broadcast: a write
    through one is seen by the other's next read, since versions never come from an L1."""
    prefix = f"qc-{uuid.uuid4().hex[:8]}"
    caches = [Cache(TieredBackend(RedisBackend(redis_url, prefix=prefix))) for _ in range(2)]
    reader = Cached(subject, caches[0])
    writer = Database(subject.db.urls.sync, settings=subject.db.settings)
    try:
        writer.query_cache.use(caches[1])
        assert reader.cached() == [(0,)]
        assert reader.cached() == [(0,)]
        with writer.session() as session:
            session.execute(update(reader.table).where(reader.table.c.id == 1).values(n=4))
        assert reader.cached() == [(4,)]
        assert reader.counts() == (1, 2)
    finally:
        writer.close()
        for cache in caches:
            subject.run(cache.aclose())  # the loop's async client too


def test_while_redis_is_unreachable_reads_go_to_the_database(subject: Subject) -> None:
    qc = Cached(subject, Cache(RedisBackend(f"redis://127.0.0.1:{free_port()}/0", socket_timeout=0.2)))
    try:
        for expected in (0, 0, 3):
            if expected == 3:
                subject.execute(f"UPDATE {qc.name} SET n = 3 WHERE id = 1")
            assert qc.cached() == [(expected,)]
        assert qc.db.query_cache.info()["bypassed"] >= 2
    finally:
        subject.run(qc.db.query_cache.cache.aclose())


# -- values, errors, metrics --------------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore:Dialect sqlite.*does .not. support Decimal objects natively")
@pytest.mark.parametrize("backend", ["memory", "redis-json", "redis-msgpack"])
def test_values_of_common_types_come_back_the_same_from_a_hit(
    subject: Subject, backend: str, request: pytest.FixtureRequest
) -> None:
    if backend == "memory":
        cache = Cache()
    else:
        serializer = MsgpackSerializer() if backend.endswith("msgpack") else None
        request.getfixturevalue("redis_client")
        url = request.getfixturevalue("redis_url")
        cache = Cache(RedisBackend(url, prefix=f"qc-{uuid.uuid4().hex[:8]}", serializer=serializer))
    name = subject.table("typed")
    typed = Table(
        name,
        MetaData(),
        Column("id", Integer, primary_key=True),
        Column("at", DateTime(timezone=True)),
        Column("day", Date),
        Column("clock", Time),
        Column("price", Numeric(10, 2)),
        Column("key", Uuid),
        Column("blob", LargeBinary),
        Column("doc", JSON),
        Column("span", Interval),
    )
    typed.create(subject.db.engine)
    row = {
        "id": 1,
        "at": datetime(2026, 12, 7, 4, 5, 6, 789, tzinfo=UTC),
        "day": date(2026, 12, 7),
        "clock": time(4, 5, 6),
        "price": Decimal("12.34"),
        "key": uuid.UUID(int=42),
        "blob": b"\x00\xffbytes",
        "doc": {"a": [1, 2.5, None, "x"]},
        "span": timedelta(days=1, seconds=2, microseconds=3),
    }
    with subject.db.session() as session:
        session.execute(insert(typed), [row])
    qc = Cached.__new__(Cached)
    qc.s, qc.db = subject, subject.db
    subject.db.query_cache.use(cache)
    stmt = select(typed).where(typed.c.id == 1)
    miss, hit = qc.cached(stmt), qc.cached(stmt)
    assert qc.counts() == (1, 1)
    assert miss == hit
    assert hit.mappings()[0]["price"] == Decimal("12.34")
    if subject.kind == "postgresql":
        assert hit.mappings()[0] == row
    subject.run(cache.aclose())


def test_caller_mistakes_are_validation_errors_before_anything_is_sent(qc: Cached) -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({"stmt": update(qc.table).values(n=1)}, "stmt"),
        ({"stmt": "SELECT 1"}, "stmt"),
        ({"stmt": select(func.now())}, "tables"),
        ({"params": [1]}, "params"),
        ({"ttl": -1}, "ttl"),
        ({"tables": [""]}, "tables"),
    ]
    for options, field in cases:
        options.setdefault("stmt", qc.query)
        with pytest.raises(ValidationError) as caught:
            qc.cached(**options)
        assert caught.value.field == field, options
    assert qc.counts() == (0, 0)


def test_turned_off_it_refuses_to_serve(request: pytest.FixtureRequest, tmp_path: Path) -> None:
    db = open_database("sqlite", tmp_path, request, query_cache=False)
    try:
        with pytest.raises(ValidationError) as caught:
            db.cached(select(func.count()).select_from(text("x")), tables=["x"])
        assert caught.value.field == "query_cache"
    finally:
        db.close()


def test_hits_misses_and_invalidations_are_metrics(qc: Cached) -> None:
    registry = MetricsRegistry()
    qc.db.query_cache.use(Cache(metrics=registry))
    qc.cached()
    qc.cached()
    qc.s.execute(f"UPDATE {qc.name} SET n = 1")
    snapshot = registry.snapshot()

    def total(name: str) -> float:
        return sum(value for value in _values(snapshot[name]))

    assert total("buttress_db_query_cache_hits_total") == 1
    assert total("buttress_db_query_cache_misses_total") == 1
    assert total("buttress_db_query_cache_invalidations_total") >= 1
    info = qc.db.query_cache.info()
    assert info["namespace"] == "dbquery"
    assert "memory" in info["cache"]


def _values(family: Any) -> Iterator[float]:
    if isinstance(family, dict):
        for key, value in family.items():
            if key == "value" and isinstance(value, int | float):
                yield value
            else:
                yield from _values(value)
    elif isinstance(family, list):
        for item in family:
            yield from _values(item)


@pytest.mark.parametrize(
    ("owner", "name"),
    [(Database, "cached"), (QueryCache, "fetch"), (QueryCache, "invalidate"), (QueryCache, "bump")],
)
def test_sync_and_async_twins_take_the_same_parameters(owner: type, name: str) -> None:
    sync, asynchronous = (inspect.signature(getattr(owner, n)) for n in (name, "a" + name))
    assert list(sync.parameters) == list(asynchronous.parameters)


def test_the_docs_examples_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    blocks = re.findall(r"```python\n(.*?)```", DOCS.read_text(), re.DOTALL)
    assert len(blocks) >= 2
    for block in blocks:
        exec(compile(block, str(DOCS), "exec"), {})  # noqa: S102 - our own documentation


# -- racing processes and threads ---------------------------------------------------------------------

ROUNDS = int(os.environ.get("BUTTRESS_TEST_QUERY_CACHE_ROUNDS", "500"))
"""Per worker: 4 x 500 = 2,000 writes or cached reads, a quarter writes (2500 gives the issue's 10,000)."""


def _race_worker(  # noqa: PLR0917 - the spawn target's arguments
    url: str,
    redis_url: str | None,
    prefix: str,
    name: str,
    mode: str,
    seed: int,
    floor: Any,
    start: Any,
    results: Any,
) -> None:
    """Write (1 in 4) or read the counter; a read that returns less than the floor seen before it is stale."""
    import random

    db = Database(url, settings=DbSettings(pool_size=2, max_overflow=2))
    cache = Cache(RedisBackend(redis_url, prefix=prefix)) if redis_url else Cache()
    outcome = _race(db, cache, name, mode, random.Random(seed), floor, start)
    results.put(outcome)


def _race(  # noqa: PLR0917
    db: Database, cache: Cache, name: str, mode: str, rng: Any, floor: Any, start: Any
) -> tuple[int, int, int, int]:
    db.query_cache.use(cache)
    table = Table(name, MetaData(), Column("id", Integer, primary_key=True), Column("n", Integer))
    query = select(table.c.n).where(table.c.id == 1)
    bump = update(table).where(table.c.id == 1).values(n=table.c.n + 1).returning(table.c.n)
    stale = reads = writes = 0

    def published(value: int) -> None:
        with floor.get_lock():
            floor.value = max(floor.value, value)

    def sync_round() -> tuple[int, int]:
        if rng.random() < 0.25:
            with db.session() as session:
                value = session.execute(bump).scalar_one()
            published(value)  # the write's block has returned
            return 0, 1
        seen = floor.value
        return int(db.cached(query)[0][0] < seen), 0

    async def async_round() -> tuple[int, int]:
        if rng.random() < 0.25:
            async with db.asession() as session:
                value = (await session.execute(bump)).scalar_one()
            published(value)
            return 0, 1
        seen = floor.value
        return int((await db.acached(query))[0][0] < seen), 0

    start.wait()
    if mode == "sync":
        for _ in range(ROUNDS):
            s, w = sync_round()
            stale, writes = stale + s, writes + w
        db.close()
    else:

        async def run() -> tuple[int, int]:
            s_total = w_total = 0
            for _ in range(ROUNDS):
                s, w = await async_round()
                s_total, w_total = s_total + s, w_total + w
            await db.aclose()
            await cache.aclose()
            return s_total, w_total

        stale, writes = asyncio.run(run())
    reads = ROUNDS - writes
    cache.close()
    return stale, reads, writes, db.query_cache.hits.value


def _prepare_counter(subject: Subject) -> str:
    name = subject.table("race")
    subject.execute(f"CREATE TABLE {name} (id INTEGER PRIMARY KEY, n INTEGER NOT NULL)")
    subject.execute(f"INSERT INTO {name} (id, n) VALUES (1, 0)")
    return name


@pytest.fixture
def pg_subject(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Subject]:
    yield from subjects(request, tmp_path, "postgresql", "sync")


@pytest.mark.timeout(600)  # 4 spawned interpreters and 2,000 round trips each way on a shared 2-core box
def test_four_processes_racing_writes_and_cached_reads_see_no_stale_read(
    pg_subject: Subject, redis_url: str, redis_client: object
) -> None:
    name = _prepare_counter(pg_subject)
    context = multiprocessing.get_context("spawn")
    floor, start, results = context.Value("q", 0), context.Barrier(4), context.Queue()
    prefix = f"qc-race-{uuid.uuid4().hex[:8]}"
    url = pg_subject.db.urls.sync.render_as_string(hide_password=False)
    workers = [
        context.Process(
            target=_race_worker,
            args=(url, redis_url, prefix, name, mode, seed, floor, start, results),
        )
        for seed, mode in enumerate(["sync", "async", "sync", "async"])
    ]
    for worker in workers:
        worker.start()
    outcomes = [results.get(timeout=300) for _ in workers]
    for worker in workers:
        worker.join(timeout=60)
        assert worker.exitcode == 0
    stale = sum(o[0] for o in outcomes)
    reads, writes, hits = (sum(o[i] for o in outcomes) for i in (1, 2, 3))
    assert reads + writes == 4 * ROUNDS
    assert pg_subject.execute(f"SELECT n FROM {name}") == [(writes,)]
    print(f"{reads} cached reads ({hits} hits), {writes} writes, {stale} stale")  # shown with -s
    assert hits > 0  # the cache served reads, so 0 stale says something
    assert stale == 0, f"{stale} stale of {reads} cached reads ({hits} hits, {writes} writes)"


@pytest.mark.parametrize("kind", KINDS)
def test_threads_of_one_process_on_the_memory_cache_see_no_stale_read(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    made = Subject(kind, "sync", open_database(kind, tmp_path, request), asyncio.new_event_loop())
    try:
        name = _prepare_counter(made)
        cache = Cache()
        floor = multiprocessing.get_context("spawn").Value("q", 0)
        barrier = threading.Barrier(4)
        outcomes: list[tuple[int, int, int, int]] = []
        import random

        def work(seed: int) -> None:
            db = open_database(kind, tmp_path, request, pool_size=2)
            outcomes.append(_race(db, cache, name, "sync", random.Random(seed), floor, barrier))

        threads = [threading.Thread(target=work, args=(seed,)) for seed in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(outcomes) == 4
        assert sum(o[3] for o in outcomes) > 0
        assert sum(o[0] for o in outcomes) == 0
    finally:
        made.close()

"""The query-result cache: a hit against the round trips it replaces, and what the commit-time bump costs.

A hit is one ``get_many`` (the result and its tables' versions) and a decode, so its floor is one
redis-py GET round trip (Redis at ``BUTTRESS_TEST_REDIS_URL``); the anchor it saves is the same SELECT by
primary key through SQLAlchemy on PostgreSQL (``BUTTRESS_TEST_DATABASE_URL``). On the embedded default
(SQLite + memory cache) the hit is compared with the SQLite SELECT itself. The write rows show an UPDATE
by primary key committed through ``db.session()`` with the version bump (one Redis write) and without it
(``query_cache=False``).
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis
import redis.asyncio
from sqlalchemy import Column, Integer, MetaData, String, Table, select, text, update

from benchmarks._harness import Row, ameasure_ns, interleave, measure_ns
from benchmarks._harness import Table as Result
from buttress.cache import Cache, RedisBackend
from buttress.config import DbSettings
from buttress.db import Database

__all__ = ["run"]

REDIS_URL = os.environ.get("BUTTRESS_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
DATABASE_URL = os.environ.get(
    "BUTTRESS_TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
ROUNDS = 5
GET = "redis-py GET"
SELECT = "SQLAlchemy SELECT by PK"


def _table(name: str) -> Table:
    return Table(name, MetaData(), Column("id", Integer, primary_key=True), Column("name", String(40)))


def _prepare(db: Database, table: Table) -> None:
    table.metadata.create_all(db.engine)
    with db.session() as session:
        session.execute(table.insert(), [{"id": i, "name": f"name {i}"} for i in range(1, 101)])


def _uncached(db: Database, query: Any) -> Callable[[], object]:
    """The same SELECT through SQLAlchemy, on a pooled connection: what a hit saves."""

    def plain() -> object:
        with db.engine.connect() as connection:
            return connection.execute(query).all()

    return plain


def _postgres_rows(prefix: str) -> list[Row]:
    table = _table(f"bench_qc_{uuid.uuid4().hex[:8]}")
    db = Database(DATABASE_URL)
    off = Database(DATABASE_URL, settings=DbSettings(query_cache=False))
    cache = Cache(RedisBackend(REDIS_URL, prefix=prefix))
    db.query_cache.use(cache)
    client = redis.Redis.from_url(REDIS_URL)
    client.set(f"{prefix}:floor", b"x" * 64)
    query = select(table.c.id, table.c.name).where(table.c.id == 42)
    bump = update(table).where(table.c.id == 7).values(name="renamed")
    try:
        _prepare(db, table)
        db.cached(query)
        plain = _uncached(db, query)

        def write(database: Database) -> None:
            with database.session() as session:
                session.execute(bump)

        sync = interleave(
            {
                "hit": lambda: measure_ns(lambda: db.cached(query)),
                GET: lambda: measure_ns(lambda: client.get(f"{prefix}:floor")),
                SELECT: lambda: measure_ns(plain),
                "write": lambda: measure_ns(lambda: write(db), repeat=3),
                "write off": lambda: measure_ns(lambda: write(off), repeat=3),
            },
            ROUNDS,
        )
        db.cached(query)
        hit_async, get_async, select_async = asyncio.run(_async_rows(db, prefix, query))
    finally:
        with db.session() as session:
            session.execute(text(f"DROP TABLE IF EXISTS {table.name}"))
        for key in client.scan_iter(f"{prefix}:*"):
            client.delete(key)
        client.close()
        cache.close()
        db.close()
        off.close()
    return [
        Row("PostgreSQL + Redis cache: hit, sync", sync["hit"], {GET: sync[GET], SELECT: sync[SELECT]}),
        Row("PostgreSQL + Redis cache: hit, async", hit_async, {GET: get_async, SELECT: select_async}),
        Row(
            "PostgreSQL: UPDATE + commit, version bump",
            sync["write"],
            {"bump off": sync["write off"]},
        ),
    ]


async def _async_rows(db: Database, prefix: str, query: object) -> tuple[float, float, float]:
    client = redis.asyncio.Redis.from_url(REDIS_URL)

    async def plain() -> object:
        async with db.async_engine.connect() as connection:
            return (await connection.execute(query)).all()  # type: ignore[call-overload]

    try:
        await db.acached(query)  # type: ignore[arg-type]
        samples: dict[str, list[float]] = {"hit": [], GET: [], SELECT: []}
        for _ in range(ROUNDS):
            samples["hit"].append(await ameasure_ns(lambda: db.acached(query)))  # type: ignore[arg-type]
            samples[GET].append(await ameasure_ns(lambda: client.get(f"{prefix}:floor")))
            samples[SELECT].append(await ameasure_ns(plain))
        await db.async_engine.dispose()
    finally:
        await client.aclose()
    return tuple(sorted(v)[len(v) // 2] for v in samples.values())  # type: ignore[return-value]


def _sqlite_row() -> Row:
    folder = Path(tempfile.mkdtemp())
    db = Database(f"sqlite:///{folder / 'bench.db'}")
    db.query_cache.use(Cache())
    table = _table("items")
    query = select(table.c.id, table.c.name).where(table.c.id == 42)
    try:
        _prepare(db, table)
        db.cached(query)
        plain = _uncached(db, query)
        result = interleave(
            {"hit": lambda: measure_ns(lambda: db.cached(query)), SELECT: lambda: measure_ns(plain)}, ROUNDS
        )
    finally:
        db.close()
    return Row("SQLite + memory cache: hit, sync", result["hit"], {SELECT: result[SELECT]})


def run() -> Result:
    prefix = f"bench-qc-{uuid.uuid4().hex[:8]}"
    rows = [*_postgres_rows(prefix), _sqlite_row()]
    return Result(
        title="Query-result cache (db.cached): a hit vs the round trips it replaces",
        anchors=[GET, SELECT, "bump off"],
        rows=rows,
        notes=[
            (
                "A hit is one get_many (the result and the versions of its tables) plus decoding the rows: "
                "its floor is one Redis round trip; SELECT by PK is the same query through SQLAlchemy."
            ),
            (
                "The write row is an UPDATE by primary key committed through db.session(); 'bump off' is "
                "the same with BUTTRESS_DB__QUERY_CACHE=false (no version replaced, no invalidation)."
            ),
        ],
    )

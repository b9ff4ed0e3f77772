"""Bulk writes: buttress's bulk_insert/upsert/update against raw psycopg COPY, the ORM and raw sqlite3.

100k rows of 3 columns (``id bigint`` primary key, ``name text``, ``price float8``), every column of a
row measured in the same run, interleaved round by round, the median of the rounds; the row count (or
the written values) is checked after every run. Costs are per row. Rows reach buttress as dicts (what
callers hold); the raw anchors get the tuples they want, built beforehand. PostgreSQL is
``BUTTRESS_TEST_DATABASE_URL`` (default: the local ``test`` database); the tables get a fresh suffix and
are dropped at the end. SQLite runs on a file in a temporary directory, WAL, the engine's own pragmas.
``BENCH_DB_BULK_N`` and ``BENCH_DB_BULK_ROUNDS`` change the row count and rounds (not ``BUTTRESS_`` names:
buttress's settings refuse unknown ones, which would fail the query cache's commit listener mid-run).
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import psycopg
from sqlalchemy import BigInteger, Column, Float, MetaData, Table, Text, create_engine, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from benchmarks._harness import Row
from benchmarks._harness import Table as Report
from buttress.db import Database

__all__ = ["run"]

N: Final = int(os.environ.get("BENCH_DB_BULK_N", "100000"))
PER_ROW_N: Final = 1_500
ROUNDS: Final = int(os.environ.get("BENCH_DB_BULK_ROUNDS", "3"))
PG_URL: Final = os.environ.get("BUTTRESS_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
SUFFIX: Final = uuid.uuid4().hex[:8]
NAME: Final = f"bench_bulk_{SUFFIX}"

RAW_COPY: Final = "raw psycopg binary COPY"
ASYNC: Final = "abulk_insert"
ORM_ROW: Final = "ORM add+commit per row"
ON_CONFLICT: Final = "pg_insert().on_conflict_do_update executemany"
STAGED: Final = "raw COPY -> temp -> merge"
EXECUTEMANY: Final = "raw sqlite3.executemany"

INSERT_RATIO: Final = 0.9
ORM_FACTOR: Final = 500
UPSERT_ROWS_S: Final = 200_000
UPDATE_ROWS_S: Final = 150_000
SQLITE_RATIO: Final = 0.5


class _Base(DeclarativeBase):
    pass


class Item(_Base):
    __tablename__ = NAME
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    price: Mapped[float] = mapped_column(Float)


TABLE: Final[Table] = Item.__table__  # type: ignore[assignment]
ROWS: Final = [{"id": i + 1, "name": f"item-{i}", "price": (i % 997) * 1.25} for i in range(N)]
TUPLES: Final = [(r["id"], r["name"], r["price"]) for r in ROWS]
UPSERT: Final = [{"id": i + 1, "name": f"new-{i}", "price": 2.0} for i in range(N // 2, N // 2 + N)]
UPDATE: Final = [{"id": i + 1, "price": float(i % 13)} for i in range(N)]


def _pg_url() -> str:
    return PG_URL.replace("postgresql+psycopg://", "postgresql://")


class _Pg:
    def __init__(self) -> None:
        self.raw = psycopg.connect(_pg_url())
        self.db = Database(_pg_url())
        self.orm = create_engine(self.db.urls.sync)
        self.loop = asyncio.new_event_loop()

    def reset(self, prefill: int = 0) -> None:
        with self.raw.cursor() as cursor:
            cursor.execute(f"DROP TABLE IF EXISTS {NAME}")
            cursor.execute(f"CREATE TABLE {NAME} (id bigint PRIMARY KEY, name text, price float8)")
            if prefill:
                with cursor.copy(f"COPY {NAME} (id, name, price) FROM STDIN (FORMAT BINARY)") as copy:
                    copy.set_types(["int8", "text", "float8"])
                    for i in range(prefill):
                        copy.write_row((i + 1, f"old-{i}", 0.0))
        self.raw.commit()
        with self.raw.cursor() as cursor:  # a fresh table's statistics, as a table in use would have
            self.raw.autocommit = True
            cursor.execute(f"VACUUM ANALYZE {NAME}")
            self.raw.autocommit = False

    def scalar(self, sql: str) -> Any:
        with self.raw.cursor() as cursor:
            cursor.execute(sql)
            row = cursor.fetchone()
        self.raw.commit()
        return None if row is None else row[0]

    def close(self) -> None:
        with self.raw.cursor() as cursor:
            cursor.execute(f"DROP TABLE IF EXISTS {NAME}")
        self.raw.commit()
        self.raw.close()
        self.loop.run_until_complete(self.db.aclose())
        self.loop.close()
        self.orm.dispose()


def _timed(setup: Callable[[], object], fn: Callable[[], object], check: Callable[[], None]) -> float:
    setup()
    start = time.perf_counter()
    fn()
    elapsed = time.perf_counter() - start
    check()
    return elapsed


def _rounds(measures: dict[str, Callable[[], float]]) -> dict[str, float]:
    """Each measure once per round, the order rotated each round; the median seconds per candidate."""
    names = list(measures)
    samples: dict[str, list[float]] = {name: [] for name in names}
    for index in range(ROUNDS):
        shift = index % len(names)
        for name in [*names[shift:], *names[:shift]]:
            samples[name].append(measures[name]())
    return {name: statistics.median(values) for name, values in samples.items()}


# -- PostgreSQL -------------------------------------------------------------------------------------


def _insert(pg: _Pg) -> dict[str, float]:
    def raw_copy() -> None:
        sql = f"COPY {NAME} (id, name, price) FROM STDIN (FORMAT BINARY)"
        with pg.raw.cursor() as cursor, cursor.copy(sql) as copy:
            copy.set_types(["int8", "text", "float8"])
            for row in TUPLES:
                copy.write_row(row)
        pg.raw.commit()

    def orm_per_row() -> None:
        with Session(pg.orm) as session:
            for row in ROWS[:PER_ROW_N]:
                session.add(Item(**row))
                session.commit()

    def count(n: int) -> Callable[[], None]:
        def check() -> None:
            got = pg.scalar(f"SELECT count(*) FROM {NAME}")  # noqa: S608
            assert got == n, (got, n)

        return check

    def abulk_insert() -> None:
        pg.loop.run_until_complete(pg.db.abulk_insert(Item, ROWS))

    seconds = _rounds(
        {
            "buttress": lambda: _timed(pg.reset, lambda: pg.db.bulk_insert(Item, ROWS), count(N)),
            ASYNC: lambda: _timed(pg.reset, abulk_insert, count(N)),
            RAW_COPY: lambda: _timed(pg.reset, raw_copy, count(N)),
        }
    )
    seconds[ORM_ROW] = _timed(pg.reset, orm_per_row, count(PER_ROW_N)) * N / PER_ROW_N
    return seconds


def _upsert(pg: _Pg) -> dict[str, float]:
    def on_conflict() -> None:
        statement = pg_insert(TABLE)
        statement = statement.on_conflict_do_update(
            index_elements=[TABLE.c.id],
            set_={"name": statement.excluded.name, "price": statement.excluded.price},
        )
        with Session(pg.orm) as session:
            session.execute(statement, UPSERT)
            session.commit()

    def staged() -> None:
        with pg.raw.cursor() as cursor:
            cursor.execute(f"CREATE TEMP TABLE stage (LIKE {NAME}) ON COMMIT DROP")
            with cursor.copy("COPY stage (id, name, price) FROM STDIN (FORMAT BINARY)") as copy:
                copy.set_types(["int8", "text", "float8"])
                for row in UPSERT:
                    copy.write_row((row["id"], row["name"], row["price"]))
            cursor.execute(
                f"INSERT INTO {NAME} SELECT * FROM stage ON CONFLICT (id) DO UPDATE "  # noqa: S608
                "SET name = EXCLUDED.name, price = EXCLUDED.price"
            )
        pg.raw.commit()

    def check() -> None:
        got = pg.scalar(f"SELECT count(*) FILTER (WHERE name LIKE 'new-%') FROM {NAME}")  # noqa: S608
        assert got == N, got
        assert pg.scalar(f"SELECT count(*) FROM {NAME}") == N + N // 2  # noqa: S608

    def setup() -> None:
        pg.reset(prefill=N)

    return _rounds(
        {
            "buttress": lambda: _timed(
                setup, lambda: pg.db.bulk_upsert(Item, UPSERT, conflict=("id",)), check
            ),
            ON_CONFLICT: lambda: _timed(setup, on_conflict, check),
            STAGED: lambda: _timed(setup, staged, check),
        }
    )


def _update(pg: _Pg) -> dict[str, float]:
    def staged() -> None:
        with pg.raw.cursor() as cursor:
            cursor.execute("CREATE TEMP TABLE ustage (id bigint, price float8) ON COMMIT DROP")
            with cursor.copy("COPY ustage (id, price) FROM STDIN (FORMAT BINARY)") as copy:
                copy.set_types(["int8", "float8"])
                for row in UPDATE:
                    copy.write_row((row["id"], row["price"]))
            cursor.execute(f"UPDATE {NAME} t SET price = s.price FROM ustage s WHERE t.id = s.id")  # noqa: S608
        pg.raw.commit()

    def check() -> None:
        got = pg.scalar(f"SELECT count(*) FROM {NAME} WHERE price = ((id - 1) % 13)::float8")  # noqa: S608
        assert got == N, got

    def setup() -> None:
        pg.reset(prefill=N)

    return _rounds(
        {
            "buttress": lambda: _timed(setup, lambda: pg.db.bulk_update(Item, UPDATE, key=("id",)), check),
            STAGED: lambda: _timed(setup, staged, check),
        }
    )


# -- SQLite -----------------------------------------------------------------------------------------


def _sqlite() -> dict[str, float]:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "bench.db"
        db = Database(f"sqlite:///{path}")
        metadata = MetaData()
        table = Table(
            "items",
            metadata,
            Column("id", BigInteger, primary_key=True),
            Column("name", Text),
            Column("price", Float),
        )

        def reset() -> None:
            metadata.drop_all(db.engine)
            metadata.create_all(db.engine)

        def raw() -> None:
            connection = sqlite3.connect(path)
            connection.execute("PRAGMA journal_mode = WAL")
            connection.executemany("INSERT INTO items (id, name, price) VALUES (?, ?, ?)", TUPLES)
            connection.commit()
            connection.close()

        def check() -> None:
            with db.session() as session:
                got = session.execute(text("SELECT count(*) FROM items")).scalar_one()
            assert got == N, got

        try:
            return _rounds(
                {
                    "buttress": lambda: _timed(reset, lambda: db.bulk_insert(table, ROWS), check),
                    EXECUTEMANY: lambda: _timed(reset, raw, check),
                }
            )
        finally:
            db.close()


# -- the table --------------------------------------------------------------------------------------


def _per_row(seconds: dict[str, float]) -> tuple[float, dict[str, float]]:
    ns = {name: value / N * 1e9 for name, value in seconds.items()}
    return ns.pop("buttress"), ns


def _rate(seconds: float) -> str:
    return f"{N / seconds:,.0f} rows/s"


def run() -> Report:
    pg = _Pg()
    try:
        insert, upsert, update = _insert(pg), _upsert(pg), _update(pg)
    finally:
        pg.close()
    lite = _sqlite()
    rows = []
    asynchronous = {"buttress": insert.pop(ASYNC), RAW_COPY: insert[RAW_COPY]}
    for label, seconds in [
        (f"PostgreSQL bulk_insert {N:,} rows (per row)", insert),
        (f"PostgreSQL abulk_insert {N:,} rows (per row)", asynchronous),
        (f"PostgreSQL bulk_upsert {N:,} rows, half existing (per row)", upsert),
        (f"PostgreSQL bulk_update {N:,} rows by id (per row)", update),
        (f"SQLite bulk_insert {N:,} rows (per row)", lite),
    ]:
        ours, anchors = _per_row(seconds)
        rows.append(Row(label, ours, anchors))
    checks = [
        ("bulk_insert / raw binary COPY speed", insert[RAW_COPY] / insert["buttress"], f">= {INSERT_RATIO}x"),
        ("bulk_insert / per-row ORM speed", insert[ORM_ROW] / insert["buttress"], f">= {ORM_FACTOR}x"),
        (
            "SQLite bulk_insert / executemany speed",
            lite[EXECUTEMANY] / lite["buttress"],
            f">= {SQLITE_RATIO}x",
        ),
    ]
    notes = [
        (
            f"Speeds: bulk_insert {_rate(insert['buttress'])} (raw binary COPY {_rate(insert[RAW_COPY])}, "
            f"per-row ORM {_rate(insert[ORM_ROW])} measured on {PER_ROW_N:,} rows); bulk_upsert "
            f"{_rate(upsert['buttress'])} (budget >= {UPSERT_ROWS_S:,}; on_conflict_do_update "
            f"{_rate(upsert[ON_CONFLICT])}, raw staged {_rate(upsert[STAGED])}); bulk_update "
            f"{_rate(update['buttress'])} (budget >= {UPDATE_ROWS_S:,}; raw staged {_rate(update[STAGED])}); "
            f"SQLite bulk_insert {_rate(lite['buttress'])} (executemany {_rate(lite[EXECUTEMANY])})."
        ),
        "Budgets: " + "; ".join(f"{name} {value:.2f}x (budget {budget})" for name, value, budget in checks),
        (
            "buttress runs with its defaults: chunks of 100,000 rows, each its own transaction (here one "
            "chunk, as the raw anchors write all rows in one), values checked and converted from dicts; "
            "upsert and update go through a temp stage like the anchors, plus a key check per chunk "
            "(DISTINCT ON is used only when a chunk repeats a key: not here) and, for upsert, the "
            "inserted/updated split read from the transaction's table statistics (no RETURNING)."
        ),
        f"Median of {ROUNDS} rounds per column, rounds interleaved; counts/values checked after each run.",
    ]
    return Report(
        title="Database: bulk writes (buttress.db vs raw COPY, the ORM and raw sqlite3)",
        anchors=[RAW_COPY, ORM_ROW, ON_CONFLICT, STAGED, EXECUTEMANY],
        rows=rows,
        notes=notes,
    )

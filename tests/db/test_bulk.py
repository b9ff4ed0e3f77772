"""Bulk writes on SQLite and PostgreSQL, sync and async: counts, values, chunks, retries, mistakes."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    Table,
    Text,
    UniqueConstraint,
    create_engine,
    select,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from buttress.clock import SystemClock
from buttress.config import DbSettings
from buttress.db import BulkResult, Database
from buttress.errors import ConflictError, ValidationError
from buttress.resilience import Backoff, Retry
from tests.db._subject import KINDS, MODES, Subject, subjects

DOCS = Path(__file__).resolve().parents[2] / "docs" / "db-bulk.md"
UTC = dt.UTC


@pytest.fixture(params=[(k, m) for k in KINDS for m in MODES], ids=lambda p: f"{p[0]}-{p[1]}")
def subject(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Subject]:
    """Each database, sync and async."""
    yield from subjects(request, tmp_path, *request.param)


def bulk(subject: Subject, op: str, target: Any, rows: Any, **options: Any) -> BulkResult:
    """``db.bulk_<op>`` or ``db.abulk_<op>``, by the subject's mode."""
    if subject.mode == "sync":
        result: BulkResult = getattr(subject.db, f"bulk_{op}")(target, rows, **options)
        return result
    return subject.run(getattr(subject.db, f"abulk_{op}")(target, rows, **options))


def create(subject: Subject, name: str, *items: Any) -> Table:
    """A table named ``name`` (made unique to the test) with ``items`` (columns, constraints), created."""
    metadata = MetaData()
    table = Table(subject.table(name), metadata, *items)
    metadata.create_all(subject.db.engine)
    return table


def items_table(subject: Subject, metadata: MetaData | None = None, **kw: Any) -> Table:
    """``items(id pk, name text NOT NULL, price float)``, created."""
    metadata = metadata or MetaData()
    table = Table(
        subject.table("items"),
        metadata,
        Column("id", BigInteger, primary_key=True),
        Column("name", Text, nullable=False),
        Column("price", Float),
        **kw,
    )
    metadata.create_all(subject.db.engine)
    return table


def contents(subject: Subject, table: Table) -> list[tuple[Any, ...]]:
    with subject.db.session() as session:
        return [tuple(r) for r in session.execute(select(table).order_by(*table.primary_key.columns))]


def item(i: int, name: str | None = None, price: float | None = 0.0) -> dict[str, Any]:
    return {"id": i, "name": name or f"n{i}", "price": price}


# -- insert -----------------------------------------------------------------------------------------


def test_values_of_every_type_round_trip(subject: Subject) -> None:
    table = create(
        subject,
        "typed",
        Column("id", BigInteger, primary_key=True),
        Column("small", Integer),
        Column("name", Text),
        Column("at", DateTime(timezone=True)),
        Column("ok", Boolean),
        Column("ratio", Float),
        Column("amount", Numeric(12, 2)),
        Column("doc", JSON),
        Column("blob", LargeBinary),
    )
    at = dt.datetime(2024, 5, 1, 12, 30, 15, 123456, tzinfo=UTC)
    full = {
        "id": 1,
        "small": -7,
        "name": "żółw \t 'quoted' \\ line\nbreak",
        "at": at,
        "ok": True,
        "ratio": 0.125,
        "amount": Decimal("12345.67"),
        "doc": {"a": [1, 2, None], "b": "x"},
        "blob": b"\x00\xff\x10",
    }
    empty = dict.fromkeys(full) | {"id": 2}
    result = bulk(subject, "insert", table, [full, empty])
    assert (result.rows, result.chunks, result.inserted, result.updated) == (2, 1, 2, 0)
    got = contents(subject, table)
    # SQLite's DateTime keeps no zone: SQLAlchemy stores the wall time, as a normal insert does.
    expected_at = at if subject.kind == "postgresql" else at.replace(tzinfo=None)
    assert got[0] == (
        1,
        -7,
        full["name"],
        expected_at,
        True,
        0.125,
        Decimal("12345.67"),
        full["doc"],
        full["blob"],
    )
    assert got[1] == (2, *[None] * 8)


def test_a_generator_longer_than_a_chunk_is_written_chunk_by_chunk(subject: Subject) -> None:
    """The input is pulled lazily: when progress reports n rows, at most one more chunk was read."""
    table = items_table(subject)
    pulled = [0]
    seen: list[tuple[int, int]] = []

    def rows() -> Iterator[dict[str, Any]]:
        for i in range(23):
            pulled[0] += 1
            yield item(i, price=i / 4)

    result = bulk(
        subject, "insert", table, rows(), chunk_size=5, progress=lambda n: seen.append((n, pulled[0]))
    )
    assert (result.rows, result.chunks, result.inserted) == (23, 5, 23)
    assert result.seconds >= 0
    assert [n for n, _ in seen] == [5, 10, 15, 20, 23]
    assert all(pulled_then <= done + 5 for done, pulled_then in seen)
    assert contents(subject, table) == [(i, f"n{i}", i / 4) for i in range(23)]


def test_an_async_iterable_feeds_the_async_twins(subject: Subject) -> None:
    table = items_table(subject)

    async def rows() -> AsyncIterator[dict[str, Any]]:
        for i in range(12):
            await asyncio.sleep(0)
            yield item(i)

    if subject.mode == "sync":
        with pytest.raises(ValidationError) as caught:
            subject.db.bulk_insert(table, rows())  # type: ignore[arg-type]
        assert caught.value.field == "rows"
        assert contents(subject, table) == []
        return
    result = subject.run(subject.db.abulk_insert(table, rows(), chunk_size=5))
    assert (result.rows, result.chunks) == (12, 3)
    assert len(contents(subject, table)) == 12


def test_empty_input_writes_nothing(subject: Subject) -> None:
    table = items_table(subject)
    result = bulk(subject, "insert", table, iter(()))
    assert (result.rows, result.chunks, result.inserted, result.updated) == (0, 0, 0, 0)


def test_a_mapped_class_is_a_target(subject: Subject) -> None:
    class Base(DeclarativeBase):
        pass

    class Thing(Base):
        __tablename__ = subject.table("things")
        id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
        label: Mapped[str] = mapped_column(Text)

    Base.metadata.create_all(subject.db.engine)
    bulk(subject, "insert", Thing, [{"id": 1, "label": "a"}, {"id": 2, "label": "b"}])
    bulk(subject, "upsert", Thing, [{"id": 2, "label": "B"}, {"id": 3, "label": "c"}], conflict=["id"])
    bulk(subject, "update", Thing, [{"id": 1, "label": "A"}], key=["id"])
    with subject.db.session() as session:
        assert [(t.id, t.label) for t in session.scalars(select(Thing).order_by(Thing.id))] == [
            (1, "A"),
            (2, "B"),
            (3, "c"),
        ]


def test_each_chunk_announces_its_table_after_it_commits(subject: Subject) -> None:
    """The query cache's seam: every committed chunk is one announcement naming its table."""
    table = items_table(subject)
    seen: list[frozenset[str]] = []
    remove = subject.db.on_commit(seen.append)
    try:
        bulk(subject, "insert", table, [item(i) for i in range(7)], chunk_size=3)
    finally:
        remove()
    assert seen == [frozenset({table.name.lower()})] * 3


# -- upsert and update ------------------------------------------------------------------------------


def test_upsert_inserts_new_rows_updates_existing_and_the_last_duplicate_wins(subject: Subject) -> None:
    table = items_table(subject)
    bulk(subject, "insert", table, [item(i, price=1.0) for i in range(1, 6)])
    rows = [item(3, "three"), item(4, "four"), item(5, "five"), item(6), item(7), item(8), item(4, "FOUR")]
    result = bulk(subject, "upsert", table, rows, conflict=["id"])
    assert result.rows == 7
    if subject.kind == "postgresql":
        assert (result.inserted, result.updated) == (3, 3)
    else:  # executemany reports rows affected only
        assert (result.inserted, result.updated) == (None, None)
    got = {r[0]: r[1:] for r in contents(subject, table)}
    assert got[4] == ("FOUR", 0.0)
    assert got[3] == ("three", 0.0)
    assert got[1] == ("n1", 1.0)
    assert sorted(got) == list(range(1, 9))


def test_upsert_counts_stay_exact_chunk_after_chunk_on_one_connection(subject: Subject) -> None:
    # PostgreSQL counts the inserted rows from the session's statistics, which may still hold earlier
    # transactions' counts: each chunk must count only its own merge.
    table = items_table(subject)
    bulk(subject, "insert", table, [item(i) for i in range(1, 6)])
    rows = [item(i, "new") for i in (4, 5, 6, 7, 8, 1, 9)]
    result = bulk(subject, "upsert", table, rows, conflict=["id"], chunk_size=2)
    assert (result.rows, result.chunks) == (7, 4)
    if subject.kind == "postgresql":
        assert (result.inserted, result.updated) == (4, 3)
    assert sorted(r[0] for r in contents(subject, table) if r[1] == "new") == [1, 4, 5, 6, 7, 8, 9]


def test_upsert_sets_only_the_update_columns(subject: Subject) -> None:
    table = items_table(subject)
    bulk(subject, "insert", table, [item(1, "old", 1.0)])
    bulk(
        subject,
        "upsert",
        table,
        [item(1, "new", 9.0), item(2, "two", 2.0)],
        conflict=("id",),
        update=("name",),
    )
    assert contents(subject, table) == [(1, "new", 1.0), (2, "two", 2.0)]


def test_upsert_on_a_unique_constraint_other_than_the_key(subject: Subject) -> None:
    table = create(
        subject,
        "users",
        Column("id", Integer, primary_key=True),
        Column("email", Text, nullable=False),
        Column("visits", Integer, nullable=False),
        UniqueConstraint("email"),
    )
    bulk(subject, "insert", table, [{"id": 1, "email": "a@x", "visits": 1}])
    rows = [{"id": 9, "email": "a@x", "visits": 5}, {"id": 2, "email": "b@x", "visits": 1}]
    bulk(subject, "upsert", table, rows, conflict=["email"], update=["visits"])
    assert contents(subject, table) == [(1, "a@x", 5), (2, "b@x", 1)]


def test_update_by_a_composite_key(subject: Subject) -> None:
    table = create(
        subject,
        "stock",
        Column("region", Text, primary_key=True),
        Column("sku", Text, primary_key=True),
        Column("qty", Integer, nullable=False),
        Column("note", Text),
    )
    start = [{"region": r, "sku": f"s{i}", "qty": 0, "note": "n"} for r in ("eu", "us") for i in range(4)]
    bulk(subject, "insert", table, start)
    rows = [
        {"region": "eu", "sku": "s1", "qty": 10},
        {"region": "us", "sku": "s1", "qty": 20},
        {"region": "eu", "sku": "s9", "qty": 99},  # matches nothing
        {"region": "eu", "sku": "s1", "qty": 11},  # the last of a key wins
    ]
    result = bulk(subject, "update", table, rows, key=["region", "sku"], chunk_size=10)
    assert (result.rows, result.inserted, result.updated) == (4, 0, 2)
    got = {(r[0], r[1]): (r[2], r[3]) for r in contents(subject, table)}
    assert got[("eu", "s1")] == (11, "n")
    assert got[("us", "s1")] == (20, "n")
    assert sum(1 for qty, _ in got.values() if qty) == 2


# -- database refusals ------------------------------------------------------------------------------


def test_a_not_null_violation_rolls_back_only_its_chunk(subject: Subject) -> None:
    table = items_table(subject)
    rows = [item(1), item(2), item(3), item(4), {"id": 5, "name": None, "price": 1.0}, item(6)]
    with pytest.raises(ValidationError) as caught:
        bulk(subject, "insert", table, rows, chunk_size=3)
    assert caught.value.error_code == "integrity_violation"
    assert caught.value.field == "rows"
    assert [r[0] for r in contents(subject, table)] == [1, 2, 3]  # chunk 1 committed, chunk 2 not at all


def test_a_duplicate_key_on_insert_is_a_conflict(subject: Subject) -> None:
    table = items_table(subject)
    bulk(subject, "insert", table, [item(1)])
    with pytest.raises(ConflictError) as caught:
        bulk(subject, "insert", table, [item(2), item(1)])
    assert caught.value.error_code == "unique_violation"
    assert [r[0] for r in contents(subject, table)] == [1]


def test_values_binary_copy_cannot_send_go_as_text(subject: Subject) -> None:
    """An int for text, a float for numeric, a naive datetime: written as a normal insert would."""
    table = create(
        subject,
        "loose",
        Column("id", Integer, primary_key=True),
        Column("name", Text),
        Column("amount", Numeric(10, 2)),
        Column("at", DateTime),
    )
    at = dt.datetime(2024, 1, 2, 3, 4, 5)  # noqa: DTZ001 - a naive timestamp column
    bulk(subject, "insert", table, [{"id": 1, "name": 42, "amount": 1.5, "at": at}])
    assert contents(subject, table) == [(1, "42", Decimal("1.50"), at)]


def test_an_int_too_wide_for_its_column_is_refused_not_truncated(database_url: str) -> None:
    """PostgreSQL only (SQLite integers are 64-bit): binary COPY would wrap 2**40 into an int4."""
    db = Database(database_url)
    metadata = MetaData()
    table = Table(f"wide_{uuid.uuid4().hex[:8]}", metadata, Column("id", Integer, primary_key=True))
    metadata.create_all(db.engine)
    try:
        with pytest.raises(ValidationError) as caught:
            db.bulk_insert(table, [{"id": 1}, {"id": 2**40}])
        assert caught.value.error_code == "invalid_value"
        with db.session() as session:
            assert session.execute(select(table)).all() == []
    finally:
        metadata.drop_all(db.engine)
        db.close()


# -- caller mistakes --------------------------------------------------------------------------------


def test_caller_mistakes_raise_before_anything_is_written(subject: Subject) -> None:
    table = items_table(subject)
    good = [item(i) for i in range(5)]
    mistakes: list[tuple[str, str, Any, dict[str, Any], str]] = [
        ("insert", "rows", [*good, {"id": 9, "name": "x", "price": 1.0, "colour": "red"}], {}, "colour"),
        ("insert", "rows", [{"id": 9, "name": "x", "colour": "red"}], {}, "colour"),
        ("insert", "rows", [*good, {"id": 9, "name": "x"}], {}, "missing ['price']"),
        ("insert", "rows", [*good, ("id", 9)], {}, "not a mapping"),
        # as wide as the first row but not its columns (PostgreSQL inserts find these as COPY sends them)
        ("insert", "rows", [*good, {"id": 9, "name": "x", "prize": 1.0}], {}, "'prize'"),
        ("insert", "rows", [*good, ("id", "name", "price")], {}, "not a mapping"),
        ("insert", "rows", {"id": 1}, {}, "iterable of mappings"),
        ("insert", "rows", [{}], {}, "no columns"),
        ("insert", "chunk_size", good, {"chunk_size": 0}, "positive"),
        ("insert", "progress", good, {"progress": "loud"}, "callable"),
        ("upsert", "conflict", good, {"conflict": ["name"]}, "unique"),
        ("upsert", "conflict", good, {"conflict": ["nope"]}, "not columns"),
        ("upsert", "conflict", [{"name": "x", "price": 1.0}], {"conflict": ["id"]}, "lack"),
        ("upsert", "update", good, {"conflict": ["id"], "update": ["id"]}, "conflict column"),
        ("upsert", "update", good, {"conflict": ["id"], "update": []}, "at least one"),
        ("upsert", "update", [{"id": 1}], {"conflict": ["id"]}, "nothing to set"),
        ("update", "key", good, {"key": []}, "at least one"),
        ("update", "rows", [{"id": 1}], {"key": ["id"]}, "nothing to update"),
        ("update", "key", [{"name": "x", "price": 1.0}], {"key": ["id"]}, "lack"),
    ]
    for op, field, rows, options, words in mistakes:
        with pytest.raises(ValidationError) as caught:
            bulk(subject, op, table, rows, **options)
        assert caught.value.field == field, (op, options, caught.value.message)
        assert words in caught.value.message, caught.value.message
    with pytest.raises(ValidationError) as caught:
        bulk(subject, "insert", "items", good)
    assert caught.value.field == "target"
    assert contents(subject, table) == []


# -- retries ----------------------------------------------------------------------------------------


class _ReleasingClock(SystemClock):
    """The real clock, except that the first backoff wait of a retry releases a held lock first."""

    __slots__ = ("release", "waits")

    def __init__(self, release: threading.Event) -> None:
        self.release = release
        self.waits = 0

    def sleep(self, seconds: float) -> None:
        self.waits += 1
        self.release.set()
        super().sleep(seconds)

    async def asleep(self, seconds: float) -> None:
        self.waits += 1
        self.release.set()
        await super().asleep(seconds)


@pytest.mark.parametrize("mode", MODES)
def test_a_chunk_refused_by_a_busy_sqlite_is_sent_again(mode: str, tmp_path: Path) -> None:
    """Another connection holds the write lock; the chunk's attempt fails busy at once (busy_timeout 0),
    the retry's backoff lets the holder go, and the second attempt writes the chunk once."""
    release, locked = threading.Event(), threading.Event()
    clock = _ReleasingClock(release)
    path = tmp_path / "busy.db"
    retry = Retry(on=Exception, attempts=5, backoff=Backoff.exponential(0.001), clock=clock)
    db = Database(f"sqlite:///{path}", settings=DbSettings(busy_timeout=0), retry=retry)
    subject = Subject("sqlite", mode, db, asyncio.new_event_loop())
    table = items_table(subject)

    def hold() -> None:
        holder = create_engine(f"sqlite:///{path}", isolation_level="AUTOCOMMIT")
        with holder.connect() as connection:
            connection.exec_driver_sql("BEGIN IMMEDIATE")
            locked.set()
            release.wait(30)
            connection.exec_driver_sql("ROLLBACK")
        holder.dispose()

    thread = threading.Thread(target=hold)
    thread.start()
    try:
        assert locked.wait(30)
        result = bulk(subject, "insert", table, [item(i) for i in range(4)])
    finally:
        release.set()
        thread.join()
        subject.close()
    assert result.rows == 4
    assert clock.waits >= 1


@pytest.mark.parametrize("mode", MODES)
def test_a_chunk_whose_backend_is_terminated_is_sent_again(mode: str, database_url: str) -> None:
    """PostgreSQL only: a trigger parks the first attempt of one chunk in pg_sleep, another connection
    terminates that backend, and the chunk is sent again on a new connection, written exactly once."""
    db = Database(database_url)
    subject = Subject("postgresql", mode, db, asyncio.new_event_loop())
    table = items_table(subject)
    name = table.name
    sequence = f"{name}_armed"
    subject.execute(f"CREATE SEQUENCE {sequence}")
    subject.execute(
        f"CREATE FUNCTION {name}_park() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        f"IF NEW.id = 7 AND nextval('{sequence}') = 1 THEN PERFORM pg_sleep(60); END IF; RETURN NEW; END $$"
    )
    subject.execute(
        f"CREATE TRIGGER park BEFORE INSERT ON {name} FOR EACH ROW EXECUTE FUNCTION {name}_park()"
    )
    killed: list[int] = []
    other = create_engine(db.engine.url, isolation_level="AUTOCOMMIT")

    def kill() -> None:
        with other.connect() as connection:
            for _ in range(3000):  # up to 30 s, until the parked backend shows up
                pid = connection.execute(
                    text(
                        "SELECT pid FROM pg_stat_activity WHERE wait_event = 'PgSleep' "
                        "AND query LIKE :copy AND pid <> pg_backend_pid()"
                    ),
                    {"copy": f"COPY {name} %"},
                ).scalar()
                if pid is not None:
                    connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
                    killed.append(pid)
                    return
                connection.execute(text("SELECT pg_sleep(0.01)"))

    thread = threading.Thread(target=kill)
    thread.start()
    try:
        result = bulk(subject, "insert", table, [item(i) for i in range(12)], chunk_size=5)
        thread.join()
        assert len(killed) == 1
        assert (result.rows, result.chunks) == (12, 3)
        assert [r[0] for r in contents(subject, table)] == list(range(12))
    finally:
        thread.join()
        subject.execute(f"DROP TABLE IF EXISTS {name}")
        subject.execute(f"DROP FUNCTION IF EXISTS {name}_park()")
        subject.execute(f"DROP SEQUENCE IF EXISTS {sequence}")
        other.dispose()
        subject.close()


# -- PostgreSQL schemas -----------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_a_table_in_another_schema(mode: str, database_url: str) -> None:
    """PostgreSQL only (SQLite has no schemas, only attached databases)."""
    db = Database(database_url)
    subject = Subject("postgresql", mode, db, asyncio.new_event_loop())
    schema = f"Bulk_{subject.suffix}"  # mixed case: every identifier must be quoted
    subject.execute(f'CREATE SCHEMA "{schema}"')
    try:
        metadata = MetaData(schema=schema)
        table = Table("Items", metadata, Column("id", BigInteger, primary_key=True), Column("name", Text))
        metadata.create_all(db.engine)
        bulk(subject, "insert", table, [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}])
        bulk(subject, "upsert", table, [{"id": 2, "name": "B"}, {"id": 3, "name": "c"}], conflict=["id"])
        bulk(subject, "update", table, [{"id": 1, "name": "A"}], key=["id"])
        assert contents(subject, table) == [(1, "A"), (2, "B"), (3, "c")]
    finally:
        subject.execute(f'DROP SCHEMA "{schema}" CASCADE')
        subject.close()


# -- the docs ---------------------------------------------------------------------------------------

BLOCKS = re.findall(r"```python\n(.*?)```", DOCS.read_text(), flags=re.DOTALL)


@pytest.mark.parametrize("block", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
@pytest.mark.usefixtures("isolated_settings")
def test_the_docs_examples_run(block: str) -> None:
    # dont_inherit: this module's `from __future__ import annotations` must not reach the example
    exec(compile(block, str(DOCS), "exec", dont_inherit=True), {"__name__": "docs_example"})  # noqa: S102


def test_the_docs_have_examples() -> None:
    assert len(BLOCKS) >= 2

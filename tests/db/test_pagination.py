"""Keyset pages on SQLite and PostgreSQL, sync and async: complete walks, NULLs, writes, cursors, FastAPI."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hashlib
import hmac
import inspect
import re
import sys
import types
import uuid
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ConfigDict, SecretStr
from sqlalchemy import (
    Column,
    Date,
    DateTime,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    String,
    Table,
    Uuid,
    delete,
    func,
    insert,
    select,
    text,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column
from sqlalchemy.types import TypeEngine

from buttress.config import DbSettings, Settings
from buttress.db import Database, Page, apaginate, paginate
from buttress.db._cursor import Cursor, cursor_key, decode_cursor, encode_cursor
from buttress.db._pagination import MAX_LIMIT
from buttress.errors import ConfigError, ValidationError
from buttress.observe.errors import ErrorAggregator
from buttress.observe.health import HealthRegistry
from buttress.observe.metrics import MetricsRegistry
from buttress.observe.system import SystemSampler
from buttress.server import PROBLEM_CONTENT_TYPE, install
from tests.db._subject import KINDS, MODES, Subject, open_database

KEY = "cursor-key-of-the-tests-0123456789"
OTHER_KEY = "another-cursor-key-9876543210abcdef"
DOCS = Path(__file__).parent.parent.parent / "docs" / "db-pagination.md"
UTC = dt.UTC


@pytest.fixture(params=[(k, m) for k in KINDS for m in MODES], ids=lambda p: f"{p[0]}-{p[1]}")
def subject(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Subject]:
    """Each database, sync and async, signing cursors with :data:`KEY`."""
    kind, mode = request.param
    made = Subject(
        kind, mode, open_database(kind, tmp_path, request, cursor_key=KEY), asyncio.new_event_loop()
    )
    try:
        yield made
    finally:
        made.close()


def page(subject: Subject, stmt: Any, **options: Any) -> Page[Any]:
    """``db.paginate`` or ``db.apaginate``, by mode."""
    if subject.mode == "sync":
        return subject.db.paginate(stmt, **options)
    return subject.run(subject.db.apaginate(stmt, **options))


def ids(page_: Page[Any]) -> list[int]:
    return [item["id"] for item in page_.items]


def walk(subject: Subject, stmt: Any, *, first: Page[Any] | None = None, **options: Any) -> list[Any]:
    """Every item from ``first`` (default: the first page) on, following ``next`` to the end."""
    current = first if first is not None else page(subject, stmt, **options)
    items = list(current.items)
    while current.next is not None:
        current = page(subject, stmt, after=current.next, **options)
        items += current.items
    return items


def make_table(subject: Subject, name: str, *columns: Column[Any]) -> Table:
    table = Table(subject.table(name), MetaData(), Column("id", Integer, primary_key=True), *columns)
    table.create(subject.db.engine)
    return table


def insert_rows(subject: Subject, table: Table, rows: list[dict[str, Any]]) -> None:
    with subject.db.session() as session:
        session.execute(delete(table))
        if rows:
            session.execute(insert(table), rows)


# -- the property: every row exactly once, forward and backward ---------------------------------------

TIMES = [dt.datetime(2026, 1, 1, tzinfo=UTC) + dt.timedelta(microseconds=m) for m in (0, 1, 999_999)]
ROWS = st.lists(
    st.fixed_dictionaries(
        {
            "a": st.none() | st.integers(-1, 1),
            "b": st.none() | st.sampled_from(["", "x", "y", "Y"]),
            "c": st.none() | st.sampled_from([Decimal("-2.25"), Decimal("1.50"), Decimal("10.00")]),
            "d": st.none() | st.sampled_from(TIMES),
        }
    ),
    max_size=24,
)
ORDERINGS = st.lists(
    st.tuples(
        st.sampled_from(["a", "b", "c", "d", "id"]),
        st.booleans(),
        st.sampled_from([None, "first", "last"]),
    ),
    min_size=1,
    max_size=3,
    unique_by=lambda spec: spec[0],
)


def _order(table: Table, specs: list[tuple[str, bool, str | None]], *, explicit: bool) -> list[Any]:
    """The ordering ``specs`` describe; ``explicit`` spells every NULLS clause (the reference query)."""
    clauses = []
    for name, descending, nulls in specs:
        clause = table.c[name].desc() if descending else table.c[name].asc()
        placement = nulls or ("first" if descending else "last")
        if nulls is not None or explicit:
            clause = clause.nulls_first() if placement == "first" else clause.nulls_last()
        clauses.append(clause)
    if explicit and "id" not in [name for name, _, _ in specs]:  # the tiebreaker follows the last column
        clauses.append(table.c.id.desc() if specs[-1][1] else table.c.id.asc())
    return clauses


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=ROWS, specs=ORDERINGS, limit=st.integers(1, 6), data=st.data())
def test_walking_forward_then_back_returns_every_row_exactly_once(
    subject: Subject,
    rows: list[dict[str, Any]],
    specs: list[tuple[str, bool, str | None]],
    limit: int,
    data: st.DataObject,
) -> None:
    """Random rows with NULLs and ties, random mixed orderings: the pages, joined, are the one-shot query."""
    table = getattr(subject, "walk_table", None)
    if table is None:
        table = make_table(
            subject,
            "walk",
            Column("a", Integer),
            Column("b", String(8)),
            Column("c", Numeric(6, 2)),
            Column("d", DateTime(timezone=True)),
        )
        subject.walk_table = table  # type: ignore[attr-defined]
    numbers = data.draw(st.lists(st.integers(1, 10_000), min_size=len(rows), max_size=len(rows), unique=True))
    insert_rows(subject, table, [{"id": n, **row} for n, row in zip(numbers, rows, strict=True)])
    expected = [
        r[0]
        for r in subject.execute(
            str(select(table.c.id).order_by(*_order(table, specs, explicit=True)).compile(subject.db.engine))
        )
    ]
    order_by = _order(table, specs, explicit=False)

    forward = page(subject, select(table), order_by=order_by, limit=limit)
    assert not forward.has_previous
    assert forward.previous is None
    pages = [forward]
    while forward.next is not None:
        forward = page(subject, select(table), order_by=order_by, after=forward.next, limit=limit)
        pages.append(forward)
    assert not forward.has_more
    assert [n for p in pages for n in ids(p)] == expected
    assert all(len(p.items) == limit and p.has_more for p in pages[:-1])
    assert len(pages[-1].items) == min(len(expected), limit) or len(pages[-1].items) <= limit

    backward, walked = forward, ids(forward)
    while backward.previous is not None:
        backward = page(subject, select(table), order_by=order_by, before=backward.previous, limit=limit)
        assert backward.has_more
        assert len(backward.items) <= limit
        walked = ids(backward) + walked
    assert not backward.has_previous
    assert walked == expected


# -- writes between pages ---------------------------------------------------------------------------


def test_rows_written_between_pages_are_never_repeated_nor_lost(subject: Subject) -> None:
    """The boundary row and a row ahead are deleted, rows are inserted behind and ahead: keyset's promise."""
    table = make_table(subject, "writes", Column("k", Integer))
    insert_rows(subject, table, [{"id": n, "k": n * 10} for n in range(1, 11)])  # k 10..100
    first = page(subject, select(table), order_by=[table.c.k], limit=3)
    assert [item["k"] for item in first.items] == [10, 20, 30]
    with subject.db.session() as session:
        session.execute(delete(table).where(table.c.k.in_([30, 50])))  # the boundary row, and one ahead
        session.execute(insert(table), [{"id": 11, "k": 15}, {"id": 12, "k": 35}, {"id": 13, "k": 30}])
    items = walk(subject, select(table), first=first, order_by=[table.c.k], limit=3)
    seen = [(item["id"], item["k"]) for item in items]
    assert len({n for n, _ in seen}) == len(seen)  # no row twice
    # every row that lived through the walk, the ones inserted ahead of the boundary (k=30 with a larger
    # id than the deleted boundary row sorts after it); none inserted behind it (k=15), none deleted ahead
    assert [k for _, k in seen] == [10, 20, 30, 30, 35, 40, 60, 70, 80, 90, 100]
    assert [n for n, k in seen if k in (15, 35) or n == 13] == [13, 12]


def test_an_emptied_next_page_leads_back_to_where_the_client_came_from(subject: Subject) -> None:
    table = make_table(subject, "emptied", Column("k", Integer))
    insert_rows(subject, table, [{"id": n, "k": n} for n in range(1, 7)])
    first = page(subject, select(table), order_by=[table.c.k.desc()], limit=3)
    assert ids(first) == [6, 5, 4]
    assert first.next is not None
    with subject.db.session() as session:
        session.execute(delete(table).where(table.c.k < 4))
    empty = page(subject, select(table), order_by=[table.c.k.desc()], after=first.next, limit=3)
    assert (empty.items, empty.has_more, empty.next, empty.has_previous) == ([], False, None, True)
    assert empty.previous is not None
    back = page(subject, select(table), order_by=[table.c.k.desc()], before=empty.previous, limit=3)
    assert ids(back) == [6, 5, 4]
    assert not back.has_previous
    assert back.has_more


# -- what pages hold --------------------------------------------------------------------------------


def thing_model(table_name: str) -> Any:
    """A mapped class of its own registry on the table ``table_name``: id, a nullable name, a unique code."""

    class Base(DeclarativeBase):
        pass

    class Thing(Base):
        __tablename__ = table_name
        id: Mapped[int] = mapped_column(primary_key=True)
        name: Mapped[str | None] = mapped_column(String(20))
        code: Mapped[str] = mapped_column(String(20), unique=True)

    return Thing


def test_items_are_orm_objects_for_one_entity_and_dicts_otherwise(subject: Subject) -> None:
    Local = thing_model(subject.table("things"))  # noqa: N806 - a class
    Local.__table__.create(subject.db.engine)
    with subject.db.session() as session:
        session.add_all(Local(id=n, name=None if n == 2 else f"n{n}", code=f"c{9 - n}") for n in range(1, 5))
    objects = page(subject, select(Local), order_by=[Local.name], limit=3)
    assert [type(item) for item in objects.items] == [Local] * 3
    assert [item.id for item in objects.items] == [1, 3, 4]
    rows = page(subject, select(Local.id, Local.name), order_by=[Local.name], limit=3)
    assert rows.items == [{"id": 1, "name": "n1"}, {"id": 3, "name": "n3"}, {"id": 4, "name": "n4"}]
    rest = page(subject, select(Local.id, Local.name), order_by=[Local.name], after=rows.next, limit=3)
    assert rest.items == [{"id": 2, "name": None}]
    assert not rest.has_more
    with pytest.raises(ValidationError, match="another query or ordering"):  # the columns differ
        page(subject, select(Local.id, Local.name), order_by=[Local.name], after=objects.next, limit=3)
    by_code = page(
        subject,
        select(Local.code, func.upper(Local.code).label("big")),
        order_by=[Local.code.desc()],
        limit=2,
    )
    assert by_code.items == [{"code": "c8", "big": "C8"}, {"code": "c7", "big": "C7"}]


def test_joins_and_fresh_aliases_are_tied_by_every_primary_key(subject: Subject) -> None:
    """A one-to-many outer join repeats the parent's key: the child's (NULL for a childless parent) breaks
    the tie. A new anonymous alias on every request shares the cached shape without sharing its columns."""
    parents = make_table(subject, "parents", Column("name", String(8)))
    children = make_table(subject, "children", Column("parent_id", Integer), Column("tag", String(8)))
    insert_rows(subject, parents, [{"id": n, "name": "same" if n < 4 else None} for n in range(1, 6)])
    insert_rows(subject, children, [{"id": n, "parent_id": 1 + n % 3, "tag": f"t{n}"} for n in range(1, 8)])
    joined = parents.outerjoin(children, children.c.parent_id == parents.c.id)
    stmt = select(parents.c.id.label("parent"), children.c.id.label("child")).select_from(joined)
    reference = subject.execute(
        f"SELECT p.id, c.id FROM {parents.name} p LEFT JOIN {children.name} c ON c.parent_id = p.id "
        "ORDER BY p.name DESC NULLS FIRST, p.id DESC, c.id DESC NULLS FIRST"
    )
    items = walk(subject, stmt, order_by=[parents.c.name.desc()], limit=2)
    assert [(item["parent"], item["child"]) for item in items] == reference

    def aliased_page(after: str | None) -> Page[Any]:
        alias = parents.alias()
        return page(subject, select(alias), order_by=[alias.c.name], after=after, limit=2)

    current = aliased_page(None)
    seen = ids(current)
    while current.next is not None:  # a fresh alias object for every page
        current = aliased_page(current.next)
        seen += ids(current)
    assert seen == [1, 2, 3, 4, 5]


def test_an_expression_with_its_own_value_is_never_served_stale_sql(subject: Subject) -> None:
    """``coalesce(k, -1)`` and ``coalesce(k, 100)`` share a cache key: each walk uses its own value."""
    table = make_table(subject, "coalesced", Column("k", Integer))
    insert_rows(subject, table, [{"id": n, "k": None if n % 2 else n} for n in range(1, 7)])
    for default, expected in ((-1, [1, 3, 5, 2, 4, 6]), (100, [2, 4, 6, 1, 3, 5])):
        items = walk(subject, select(table), order_by=[func.coalesce(table.c.k, default)], limit=2)
        assert [item["id"] for item in items] == expected, default


def test_the_free_functions_page_a_session_of_your_own(subject: Subject) -> None:
    table = make_table(subject, "free", Column("k", Integer))
    insert_rows(subject, table, [{"id": n, "k": n % 2} for n in range(1, 6)])

    def unit(session: Session) -> list[int]:
        first = paginate(session, select(table), order_by=[table.c.k], limit=2, key=KEY)
        rest = paginate(session, select(table), order_by=[table.c.k], after=first.next, limit=5, key=KEY)
        return ids(first) + ids(rest)

    async def aunit(session: AsyncSession) -> list[int]:
        first = await apaginate(session, select(table), order_by=[table.c.k], limit=2, key=KEY)
        rest = await apaginate(
            session, select(table), order_by=[table.c.k], after=first.next, limit=5, key=KEY
        )
        return ids(first) + ids(rest)

    assert subject.transaction(unit, aunit) == [2, 4, 1, 3, 5]


def test_sort_values_of_every_supported_type_round_trip_through_the_database(subject: Subject) -> None:
    columns: dict[str, TypeEngine[Any]] = {
        "t": DateTime(timezone=True),
        "day": Date(),
        "u": Uuid(),
        "n": Numeric(30, 10),
        "s": String(20),
        "blob": LargeBinary(),
    }
    table = make_table(subject, "typed", *(Column(name, kind) for name, kind in columns.items()))
    base = dt.datetime(2026, 3, 1, 12, 0, 0, 123_456, tzinfo=UTC)
    insert_rows(
        subject,
        table,
        [
            {
                "id": n,
                "t": None if n == 3 else base + dt.timedelta(microseconds=n % 3),
                "day": dt.date(2026, 1, 1 + n % 2),
                "u": uuid.UUID(int=n % 4),
                "n": Decimal("12345678901234567890.0000000001") * (n % 3),
                "s": "ünïcode ✓" if n % 2 else None,
                "blob": bytes([n % 2, 0, 255]),
            }
            for n in range(1, 9)
        ],
    )
    for name in columns:
        order_by = [table.c[name].desc(), table.c.id.desc()]
        expected = [
            r[0]
            for r in subject.execute(
                str(
                    select(table.c.id)
                    .order_by(table.c[name].desc().nulls_first(), table.c.id.desc())
                    .compile(subject.db.engine)
                )
            )
        ]
        items = walk(subject, select(table), order_by=order_by, limit=1)
        assert [item["id"] for item in items] == expected, name


# -- cursors and arguments that are refused -----------------------------------------------------------


def _flip_payload(cursor: str) -> str:
    """The cursor with one byte of its signed payload changed and its signature kept."""
    raw = bytearray(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    raw[-3] ^= 0x01
    return base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()


def _signed(payload: bytes) -> str:
    """``payload`` signed with the tests' key: a genuine signature over something that is not a position."""
    mac = hmac.new(cursor_key(KEY), payload, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac + payload).rstrip(b"=").decode()


def test_tampered_foreign_and_malformed_cursors_are_refused(subject: Subject) -> None:
    table = make_table(subject, "refuse", Column("k", Integer))
    insert_rows(subject, table, [{"id": n, "k": n} for n in range(1, 6)])
    first = page(subject, select(table), order_by=[table.c.k], limit=2)
    good = first.next
    assert good is not None
    assert re.fullmatch(r"[A-Za-z0-9_-]+", good)
    other_key = subject.db.paginate(select(table), order_by=[table.c.k], limit=2, key=OTHER_KEY).next

    cases: list[tuple[dict[str, Any], str, str]] = [
        ({"after": _flip_payload(good)}, "after", "cursor_tampered"),
        ({"after": other_key}, "after", "cursor_tampered"),
        ({"after": good, "order_by": [table.c.k.desc()]}, "after", "cursor_mismatch"),
        ({"after": good, "order_by": [table.c.k.asc().nulls_first()]}, "after", "cursor_mismatch"),
        ({"after": good, "stmt": select(table).where(table.c.k > 0)}, "after", "cursor_mismatch"),
        ({"after": "not a cursor!"}, "after", "cursor_invalid"),
        ({"after": ""}, "after", "cursor_invalid"),
        ({"after": "A" * 5000}, "after", "cursor_invalid"),
        ({"before": "QUJD"}, "before", "cursor_invalid"),
        ({"before": good}, "before", "cursor_direction"),
        ({"after": _signed(b"[1,2,3]")}, "after", "cursor_invalid"),
        ({"after": _signed(b'[1,"a",0,"fp",[]]')}, "after", "cursor_mismatch"),
        ({"after": good[:-4]}, "after", "cursor_tampered"),  # truncated
    ]
    for options, field, code in cases:
        arguments = {"stmt": select(table), "order_by": [table.c.k], "limit": 2, **options}
        with pytest.raises(ValidationError) as caught:
            page(subject, arguments.pop("stmt"), **arguments)
        assert (caught.value.field, caught.value.error_code) == (field, code), options
        assert "A" * 100 not in caught.value.message
    assert ids(page(subject, select(table), order_by=[table.c.k], after=good, limit=2)) == [3, 4]


def test_bad_arguments_are_validation_errors_naming_them(subject: Subject) -> None:
    table = make_table(subject, "args", Column("k", Integer))
    cursor = page(subject, select(table), order_by=[table.c.k], limit=1).previous
    keyless = Table(
        subject.table("keyless"),
        MetaData(),
        Column("k", Integer),
        Column("code", String(8), unique=True, nullable=False),
    )
    keyless.create(subject.db.engine)
    cases: list[tuple[Any, dict[str, Any], str]] = [
        (select(table), {"limit": 0}, "limit"),
        (select(table), {"limit": MAX_LIMIT + 1}, "limit"),
        (select(table), {"limit": True}, "limit"),
        (select(table), {"limit": "5"}, "limit"),
        (select(table), {"after": "x", "before": "y"}, "before"),
        (select(table), {"order_by": []}, "order_by"),
        (select(table), {"order_by": "k"}, "order_by"),
        (select(table), {"order_by": ["k"]}, "order_by"),
        (select(table).order_by(table.c.k), {}, "stmt"),
        (select(table).limit(3), {}, "stmt"),
        (text(f"SELECT * FROM {table.name}"), {}, "stmt"),
        (select(keyless), {"order_by": [keyless.c.k]}, "order_by"),
    ]
    for stmt, options, field in cases:
        with pytest.raises(ValidationError) as caught:
            page(subject, stmt, **{"order_by": [table.c.k], **options})
        assert caught.value.field == field, options
    assert cursor is None
    assert page(subject, select(keyless), order_by=[keyless.c.code]).items == []  # unique, not null: enough


def test_the_signing_key_comes_from_the_settings_and_production_requires_one() -> None:
    with_secret = Settings(_env_file=None, security={"secret_key": KEY})
    with_db_key = Settings(_env_file=None, security={"secret_key": KEY}, db={"cursor_key": OTHER_KEY})
    assert cursor_key(settings=with_secret) == cursor_key(KEY)
    assert cursor_key(settings=with_db_key) == cursor_key(SecretStr(OTHER_KEY)) != cursor_key(KEY)
    assert cursor_key(KEY) != KEY.encode()  # bound to cursors, not the raw secret
    development = Settings(_env_file=None)
    assert cursor_key(settings=development) == cursor_key(settings=development)
    with pytest.raises(ConfigError, match="BUTTRESS_DB__CURSOR_KEY"):
        cursor_key(settings=Settings(_env_file=None, app={"environment": "production"}))
    with pytest.raises(ValidationError) as short:
        cursor_key("short")
    assert short.value.field == "key"
    with pytest.raises(Exception, match="at least 16 bytes"):
        DbSettings(cursor_key="short")


VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.text(),
    st.floats(allow_nan=False),
    st.decimals(allow_nan=False),
    st.datetimes(
        timezones=st.none()
        | st.builds(dt.timezone, st.integers(-1439, 1439).map(lambda m: dt.timedelta(minutes=m)))
    ),
    st.dates(),
    st.times(),
    st.timedeltas(),
    st.uuids(),
    st.binary(),
)


@settings(max_examples=300, deadline=None)
@given(values=st.lists(VALUES, max_size=5))
def test_cursor_values_round_trip_exactly(values: list[Any]) -> None:
    key = cursor_key(KEY)
    text_ = encode_cursor(Cursor("a", tuple(values), "fp"), key)
    back = decode_cursor(text_, field="after", key=key, fingerprint="fp", size=len(values))
    assert [(type(v), v) for v in back.values] == [(type(v), v) for v in values]
    offsets = [v.utcoffset() for v in values if isinstance(v, dt.datetime)]
    assert [v.utcoffset() for v in back.values if isinstance(v, dt.datetime)] == offsets


def test_a_value_a_cursor_cannot_carry_is_a_validation_error() -> None:
    with pytest.raises(ValidationError) as caught:
        encode_cursor(Cursor("a", (object(),), "fp"), cursor_key(KEY))
    assert caught.value.field == "order_by"


def test_the_sync_and_async_twins_take_the_same_parameters() -> None:
    def parameters(fn: Any) -> list[tuple[str, Any, Any]]:
        return [(p.name, p.kind, p.default) for p in inspect.signature(fn).parameters.values()]

    assert parameters(paginate) == parameters(apaginate)
    assert parameters(Database.paginate) == parameters(Database.apaginate)
    assert parameters(Database.paginate)[1:] == parameters(paginate)[1:]  # self in place of the session


# -- FastAPI --------------------------------------------------------------------------------------------


class ThingOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    name: str | None


@pytest.fixture(params=KINDS)
async def api(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[httpx.AsyncClient, Database]]:
    """An app with a sync and an async paged route over one table, buttress installed for problems."""
    db = open_database(request.param, tmp_path, request, cursor_key=KEY)
    Row = thing_model(f"things_api_{uuid.uuid4().hex[:8]}")  # noqa: N806 - a class
    table = Row.__table__
    table.create(db.engine)
    with db.session() as session:
        session.add_all(
            Row(id=n, name=None if n % 3 == 0 else f"thing {n}", code=f"c{n}") for n in range(1, 8)
        )
    app = FastAPI()
    install(
        app,
        Settings(_env_file=None),
        health=HealthRegistry(),
        metrics=MetricsRegistry(),
        errors=ErrorAggregator(),
        sampler=SystemSampler(3600.0),
    )

    @app.get("/things", response_model=Page[ThingOut])
    def things(after: str | None = None, before: str | None = None, limit: int = 3) -> Page[Any]:
        return db.paginate(select(Row), order_by=[Row.name.desc()], after=after, before=before, limit=limit)

    @app.get("/athings", response_model=Page[ThingOut])
    async def athings(after: str | None = None, before: str | None = None, limit: int = 3) -> Page[Any]:
        return await db.apaginate(
            select(Row), order_by=[Row.name.desc()], after=after, before=before, limit=limit
        )

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as client:
            yield client, db
    finally:
        table.drop(db.engine)
        await db.aclose()


async def test_a_page_is_a_fastapi_response_model(api: tuple[httpx.AsyncClient, Database]) -> None:
    client, _ = api
    schema = (await client.get("/openapi.json")).json()
    page_schema = schema["components"]["schemas"]["Page_ThingOut_"]
    assert set(page_schema["required"]) == {"items", "has_more", "has_previous", "limit"}
    assert page_schema["properties"]["items"]["items"] == {"$ref": "#/components/schemas/ThingOut"}
    assert page_schema["properties"]["next"]["anyOf"] == [{"type": "string"}, {"type": "null"}]
    for path in ("/things", "/athings"):
        first = (await client.get(path)).json()
        assert first["items"] == [  # NULL names first when descending, tied by id, descending too
            {"id": 6, "name": None},
            {"id": 3, "name": None},
            {"id": 7, "name": "thing 7"},
        ]
        assert (first["has_more"], first["has_previous"], first["previous"], first["limit"]) == (
            True,
            False,
            None,
            3,
        )
        rest = (await client.get(path, params={"after": first["next"], "limit": 10})).json()
        assert [item["id"] for item in rest["items"]] == [5, 4, 2, 1]
        assert rest["next"] is None
        back = (await client.get(path, params={"before": rest["previous"]})).json()
        assert back["items"] == first["items"]


async def test_a_bad_cursor_is_a_422_problem_naming_the_argument(
    api: tuple[httpx.AsyncClient, Database],
) -> None:
    client, _ = api
    first = (await client.get("/athings")).json()
    for params, code in (
        ({"after": _flip_payload(first["next"])}, "cursor_tampered"),
        ({"before": first["next"]}, "cursor_direction"),
        ({"after": "garbage"}, "cursor_invalid"),
        ({"limit": "0"}, "validation_failed"),
    ):
        response = await client.get("/things", params=params)
        assert response.status_code == 422, params
        assert response.headers["content-type"] == PROBLEM_CONTENT_TYPE
        problem = response.json()
        assert problem["error_code"] == code
        assert (
            ("after" in problem["detail"])
            or ("before" in problem["detail"])
            or ("limit" in problem["detail"])
        )


# -- docs -----------------------------------------------------------------------------------------------

DOC_BLOCKS = re.findall(r"```python\n(.*?)```", DOCS.read_text(), flags=re.DOTALL)


@pytest.mark.parametrize("block", DOC_BLOCKS, ids=[f"block{i}" for i in range(len(DOC_BLOCKS))])
@pytest.mark.usefixtures("isolated_settings")
def test_the_docs_examples_run(block: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each example runs as a module of its own, without this file's ``from __future__`` imports."""
    module = types.ModuleType("docs_example")
    monkeypatch.setitem(sys.modules, module.__name__, module)
    exec(compile(block, str(DOCS), "exec", dont_inherit=True), module.__dict__)  # noqa: S102

"""Bulk writes: insert, upsert and update any number of rows, chunk by chunk, one retried transaction each.

Rows are mappings keyed by column key, taken from any iterable (or, for the ``a`` twins, async iterable)
``chunk_size`` at a time, so memory holds one chunk whatever the input's length. Every row of a call has
the columns of the first row. A chunk is checked and converted (the columns' SQLAlchemy bind processors,
so type decorators, JSON and SQLite date strings behave as they do in a statement), then written in its
own transaction through :meth:`Database.retry <buttress.db.Database>`: a serialization failure, deadlock,
lost connection or SQLite busy rolls the chunk back and sends it again (its rows stay in memory until it
commits). PostgreSQL writes by binary COPY through the pooled connection (:mod:`buttress.db._copy`);
SQLite by ``executemany`` of one compiled statement. Within one chunk, when two rows carry the same
conflict (upsert) or key (update) values, the last one wins, on both databases.

Caller mistakes raise :class:`~buttress.errors.ValidationError` before the chunk holding them is sent
(chunks before it are committed; a mistake in the first chunk therefore writes nothing). A row the
database refuses (a NULL in a NOT NULL column, a failed check or foreign key) rolls its chunk back and
raises ``ValidationError`` with ``error_code="integrity_violation"`` (a value out of its column's range
or unparsable: ``"invalid_value"``); a unique violation raises
``ConflictError``; other errors leave as :func:`~buttress.db.translate` maps them.
"""

from __future__ import annotations

import gc
import itertools
import sqlite3
from collections import deque
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Collection,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from dataclasses import dataclass
from operator import itemgetter
from typing import TYPE_CHECKING, Any, Final, Literal, NoReturn

from sqlalchemy import Table, UniqueConstraint
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from buttress.db import _copy
from buttress.db._errors import sqlstate_of, translate
from buttress.db._writes import note_written
from buttress.errors import RetryExhausted, ValidationError

if TYPE_CHECKING:
    from buttress.db._database import Database

__all__ = ["DEFAULT_CHUNK_SIZE", "BulkResult", "Op", "Plan", "Spec", "arun", "run", "spec"]

DEFAULT_CHUNK_SIZE: Final = 50_000
"""Rows per chunk unless the caller says otherwise. Each chunk is one commit, one WAL flush: at 10,000
rows the flushes cost PostgreSQL a fifth of COPY's speed on this project's machines; at 50,000 a few
percent, while a chunk of three-column dicts holds ~15 MB."""

Op = Literal["insert", "upsert", "update"]
Progress = Callable[[int], object]


@dataclass(frozen=True, slots=True)
class BulkResult:
    """What a bulk write did: ``rows`` taken from the input and written, in ``chunks`` transactions.

    ``inserted``/``updated``: rows the database inserted and updated. An insert inserts every row; an
    update counts the rows its keys matched; an upsert counts both on PostgreSQL and leaves them ``None``
    on SQLite, whose ``executemany`` reports only rows affected (equal to ``rows``).
    """

    rows: int
    chunks: int
    seconds: float
    inserted: int | None
    updated: int | None


@dataclass(frozen=True, slots=True)
class Spec:
    """A bulk write as asked, checked before any row is read."""

    op: Op
    table: Table
    conflict: tuple[str, ...]
    update: tuple[str, ...] | None
    key: tuple[str, ...]
    chunk_size: int


@dataclass(frozen=True, slots=True)
class Plan:
    """A bulk write with its columns known (those of the first row): what to send, in which order.

    ``columns`` are the row keys in the order values are sent; ``matched`` the conflict (upsert) or key
    (update) columns and ``written`` the columns an upsert or update sets.
    """

    op: Op
    table: Table
    columns: tuple[str, ...]
    matched: tuple[str, ...]
    written: tuple[str, ...]
    convert: Callable[[list[Any], int], Rows]

    def name(self, key: str) -> str:
        """The database name of the column whose key is ``key``."""
        return str(self.table.c[key].name)


class Values(Collection[Sequence[Any]]):
    """A checked chunk whose rows become value tuples only as they are read (none kept in memory)."""

    __slots__ = ("getter", "rows")

    def __init__(self, rows: list[Any], getter: Callable[[Any], Sequence[Any]]) -> None:
        self.rows = rows
        self.getter = getter

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self) -> Iterator[Sequence[Any]]:
        return map(self.getter, self.rows)

    def __contains__(self, value: object) -> bool:
        return any(v == value for v in self)


Rows = Collection[Sequence[Any]]
"""A chunk's values in column order: :class:`Values`, or a list of tuples when columns were processed."""


# -- checking what the caller asked -----------------------------------------------------------------


def resolve_table(target: object) -> Table:
    """The Table of ``target``: a Table itself or a mapped class (its local table)."""
    if isinstance(target, Table):
        return target
    if isinstance(target, type):
        mapper: object = sa_inspect(target, raiseerr=False)
        table = getattr(mapper, "local_table", None)
        if isinstance(table, Table):
            return table
    raise ValidationError(
        f"target must be a SQLAlchemy Table or a mapped class, got {target!r}; "
        "e.g. db.bulk_insert(items_table, rows) or db.bulk_insert(Item, rows)",
        field="target",
    )


def _names(value: object, field: str, table: Table, *, empty_ok: bool = False) -> tuple[str, ...]:
    if isinstance(value, str):
        value = (value,)
    if not isinstance(value, Iterable):
        raise ValidationError(f"{field} must be a sequence of column names, got {value!r}", field=field)
    names = tuple(value)
    if not names and not empty_ok:
        raise ValidationError(
            f"{field} must name at least one column of {table.fullname}; e.g. {field}=('id',)", field=field
        )
    unknown = [n for n in names if not isinstance(n, str) or n not in table.c]
    if unknown:
        raise ValidationError(
            f"{field} names {unknown!r}, which are not columns of {table.fullname}; "
            f"its columns are {', '.join(table.c.keys())}",
            field=field,
        )
    if len(set(names)) != len(names):
        raise ValidationError(f"{field} names a column twice: {names!r}", field=field)
    return names


def _unique_sets(table: Table) -> list[frozenset[str]]:
    """The column-key sets the table's metadata declares unique: primary key, constraints, indexes."""
    sets = [frozenset(c.key for c in table.primary_key.columns)]
    sets += [
        frozenset(c.key for c in constraint.columns)
        for constraint in table.constraints
        if isinstance(constraint, UniqueConstraint)
    ]
    sets += [
        frozenset(c.key for c in index.columns)
        for index in table.indexes
        if index.unique and len(index.columns) == len(index.expressions)
    ]
    return [s for s in sets if s]


def spec(
    op: Op,
    target: object,
    *,
    conflict: object = (),
    update: object = None,
    key: object = (),
    chunk_size: object = DEFAULT_CHUNK_SIZE,
    progress: object = None,
) -> Spec:
    """Check what the caller asked, before any row is read; a mistake is a ValidationError naming it."""
    table = resolve_table(target)
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValidationError(
            f"chunk_size must be a positive int, got {chunk_size!r}; e.g. chunk_size=10_000",
            field="chunk_size",
        )
    if progress is not None and not callable(progress):
        raise ValidationError(
            f"progress must be a callable taking the rows done so far, got {progress!r}", field="progress"
        )
    conflict_names: tuple[str, ...] = ()
    key_names: tuple[str, ...] = ()
    update_names: tuple[str, ...] | None = None
    if op == "upsert":
        conflict_names = _names(conflict, "conflict", table)
        if frozenset(conflict_names) not in _unique_sets(table):
            raise ValidationError(
                f"conflict={conflict_names!r} is not the primary key, a unique constraint or a unique "
                f"index of {table.fullname} as its metadata declares them; name one of "
                f"{[tuple(sorted(s)) for s in _unique_sets(table)]} (declare the constraint on the Table)",
                field="conflict",
            )
        if update is not None:
            update_names = _names(update, "update", table)
            both = sorted(set(update_names) & set(conflict_names))
            if both:
                raise ValidationError(
                    f"update names conflict columns {both!r}; a conflict column cannot be updated",
                    field="update",
                )
    elif op == "update":
        key_names = _names(key, "key", table)
    return Spec(op, table, conflict_names, update_names, key_names, chunk_size)


def plan(spec_: Spec, first: object, dialect: Dialect) -> Plan:
    """The plan of a bulk write whose first row is ``first``: columns, matched and written ones."""
    table = spec_.table
    if not isinstance(first, Mapping):
        _not_a_mapping(first, 0)
    columns = tuple(first)
    unknown = [c for c in columns if not isinstance(c, str) or c not in table.c]
    if unknown:
        raise ValidationError(
            f"row 0 has {unknown!r}, which are not columns of {table.fullname}; "
            f"its columns are {', '.join(table.c.keys())}",
            field="rows",
        )
    if not columns:
        raise ValidationError("row 0 has no columns; a row maps column names to values", field="rows")
    matched = spec_.conflict if spec_.op == "upsert" else spec_.key
    missing = [c for c in matched if c not in columns]
    if missing:
        field = "conflict" if spec_.op == "upsert" else "key"
        raise ValidationError(
            f"the rows lack the {field} columns {missing!r}; every row must carry them", field=field
        )
    written: tuple[str, ...] = ()
    if spec_.op != "insert":
        if spec_.update is not None:
            absent = [c for c in spec_.update if c not in columns]
            if absent:
                raise ValidationError(
                    f"update names {absent!r}, which the rows do not carry; add them to the rows or "
                    "leave them out of update",
                    field="update",
                )
            written = spec_.update
        else:
            written = tuple(c for c in columns if c not in matched)
        if not written:
            raise ValidationError(
                f"nothing to {'update' if spec_.op == 'update' else 'set on conflict'}: the rows carry only "
                f"the {'key' if spec_.op == 'update' else 'conflict'} columns {matched!r}; add the columns "
                "to write to the rows",
                field="update" if spec_.op == "upsert" else "rows",
            )
    return Plan(spec_.op, table, columns, matched, written, _converter(table, columns, dialect))


def _not_a_mapping(row: object, index: int) -> NoReturn:
    raise ValidationError(
        f"row {index} is a {type(row).__name__}, not a mapping; each row maps column names to values, "
        "e.g. {'id': 1, 'name': 'a'}",
        field="rows",
    )


def _shape_error(row: object, index: int, columns: tuple[str, ...]) -> NoReturn:
    if not isinstance(row, Mapping):
        _not_a_mapping(row, index)
    extra = sorted(str(k) for k in row if k not in columns)
    missing = [c for c in columns if c not in row]
    raise ValidationError(
        f"row {index} does not have the columns of row 0 ({', '.join(columns)}): "
        f"extra {extra!r}, missing {missing!r}; every row of a call carries the same columns",
        field="rows",
    )


def _converter(table: Table, columns: tuple[str, ...], dialect: Dialect) -> Callable[[list[Any], int], Rows]:
    """A function turning a chunk of mappings into value sequences, checking each row's shape.

    Only the columns whose type has a bind processor on ``dialect`` are processed; the others pass as
    they are (on the usual int/text/float tables, no Python runs per value beyond the item getter).
    """
    width = len(columns)
    getter: Callable[[Any], Any] = itemgetter(*columns)
    if width == 1:
        single = columns[0]

        def getter(row: Any) -> tuple[Any, ...]:
            return (row[single],)

    processors = [
        (index, processor)
        for index, name in enumerate(columns)
        if (processor := table.c[name].type.dialect_impl(dialect).bind_processor(dialect)) is not None
    ]

    def convert(chunk: list[Any], offset: int) -> Rows:
        # Two C-level passes: every row has `width` keys, and the item getter finds each column in it
        # (so the keys are exactly the columns). Only a chunk that fails them is walked row by row.
        try:
            valid = set(map(len, chunk)) <= {width} and deque(map(getter, chunk), maxlen=0) is not None
        except (KeyError, TypeError):
            valid = False
        if not valid:
            for index, row in enumerate(chunk):
                if not isinstance(row, Mapping) or len(row) != width or any(c not in row for c in columns):
                    _shape_error(row, offset + index, columns)
        if not processors:
            return Values(chunk, getter)  # each row's tuple is made as it is sent, and freed at once
        return _processed(chunk)

    def _processed(chunk: list[Any]) -> list[Sequence[Any]]:
        # Column by column (transpose, map, transpose back): C loops but for the processors themselves.
        # A tuple per row is kept: with the collector on, those allocations trigger full collections
        # that walk every live object, which cost several times the conversion itself; nothing here
        # makes cycles, so the collector waits until the chunk is converted.
        enabled = gc.isenabled()
        gc.disable()
        try:
            transposed: list[Iterable[Any]] = list(zip(*map(getter, chunk), strict=True))
            for index, processor in processors:
                transposed[index] = map(processor, transposed[index])
            return list(zip(*transposed, strict=True))
        finally:
            if enabled:
                gc.enable()

    return convert


# -- writing ----------------------------------------------------------------------------------------


Counts = tuple[int, int | None, int | None]
"""Per chunk: rows sent, rows inserted, rows updated."""


def _sqlite_sql(plan_: Plan, dialect: Dialect) -> str:
    quote = dialect.identifier_preparer.quote
    table = dialect.identifier_preparer.format_table(plan_.table)
    names = [quote(plan_.name(c)) for c in plan_.columns]
    if plan_.op == "update":
        sets = ", ".join(f"{quote(plan_.name(c))} = ?" for c in plan_.written)
        where = " AND ".join(f"{quote(plan_.name(c))} = ?" for c in plan_.matched)
        return f"UPDATE {table} SET {sets} WHERE {where}"  # noqa: S608 - quoted identifiers only
    sql = f"INSERT INTO {table} ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})"  # noqa: S608
    if plan_.op == "upsert":
        conflict = ", ".join(quote(plan_.name(c)) for c in plan_.matched)
        sets = ", ".join(f"{quote(plan_.name(c))} = excluded.{quote(plan_.name(c))}" for c in plan_.written)
        sql += f" ON CONFLICT ({conflict}) DO UPDATE SET {sets}"
    return sql


def _sqlite_order(plan_: Plan) -> Callable[[Rows], Rows] | None:
    """What a chunk's values become before ``executemany``: for an upsert or update, the last row of each
    key only (as PostgreSQL's ``DISTINCT ON`` keeps it, so both count alike); for an update, reordered to
    (written..., matched...) as the UPDATE's placeholders need."""
    if plan_.op == "insert":
        return None
    key = itemgetter(*[plan_.columns.index(c) for c in plan_.matched])
    if plan_.op == "upsert":
        return lambda values: list({key(v): v for v in values}.values())
    order = itemgetter(*[plan_.columns.index(c) for c in (*plan_.written, *plan_.matched)])
    return lambda values: [order(v) for v in {key(v): v for v in values}.values()]


def _sqlite_counts(plan_: Plan, sent: int, rowcount: int) -> Counts:
    if plan_.op == "insert":
        return sent, sent, 0
    if plan_.op == "update":
        return sent, 0, rowcount
    return sent, None, None


def _driver_error(connection: Connection, error: Exception, sql: str) -> DBAPIError:
    """A raw driver error as SQLAlchemy would have wrapped it, so retry and translation read it alike."""
    dialect = connection.dialect
    invalidated = bool(getattr(error, "_buttress_invalidated", False))
    wrapped = DBAPIError.instance(
        sql, None, error, type(error), connection_invalidated=invalidated, dialect=dialect
    )
    return wrapped if isinstance(wrapped, DBAPIError) else DBAPIError(sql, None, error)


class _Writer:
    """One bulk write's chunks, written sync or async: the SQL is built once, the I/O per chunk."""

    def __init__(self, db: Database, plan_: Plan) -> None:
        self.db = db
        self.plan = plan_
        self.backend = db.backend
        self.dialect = db.engine.dialect
        self.sqlite_sql = _sqlite_sql(plan_, self.dialect) if self.backend == "sqlite" else ""
        self.reorder = _sqlite_order(plan_) if self.backend == "sqlite" else None
        self.pg: _copy.CopyPlan | None = None
        self.connection: Connection | None = None
        self.aconnection: AsyncConnection | None = None

    # sync: one pooled connection for all chunks, given back (and a fresh one taken) after a failure

    def write(self, values: Rows) -> Counts:
        sent = self.reorder(values) if self.reorder else values

        def attempt() -> Counts:
            if self.connection is None:
                self.connection = self.db.engine.connect()
            connection = self.connection
            try:
                with connection.begin():
                    counts = self._chunk(connection, sent, len(values))
                    note_written(connection, [self.plan.table.fullname])
                    return counts
            except BaseException:
                self.close()
                raise

        try:
            return self._retried(lambda: self.db.retry.call(attempt))
        except _copy.NeedsText as exc:
            self._to_text(exc)
            return self._retried(lambda: self.db.retry.call(attempt))

    def close(self) -> None:
        """Give the connection back to the pool."""
        if self.connection is not None:
            connection, self.connection = self.connection, None
            connection.close()

    def _chunk(self, connection: Connection, values: Rows, sent: int) -> Counts:
        driver = connection.connection.driver_connection
        if self.backend == "postgresql":
            if self.pg is None:
                self.pg = _copy.CopyPlan.load(driver, self.plan)
            try:
                return _copy.write(driver, self.pg, values)
            except _copy.DRIVER_ERRORS as exc:
                raise self._wrapped(connection, exc, self.pg.describe) from exc
        try:
            cursor = driver.cursor()  # type: ignore[union-attr]
            cursor.executemany(self.sqlite_sql, values)
            return _sqlite_counts(self.plan, sent, cursor.rowcount)
        except sqlite3.Error as exc:
            raise _driver_error(connection, exc, self.sqlite_sql) from exc

    def _wrapped(self, connection: Connection, error: Exception, sql: str) -> DBAPIError:
        if _copy.is_broken(connection.connection.driver_connection):
            error._buttress_invalidated = True  # type: ignore[attr-defined]
            connection.invalidate()
        return _driver_error(connection, error, sql)

    # async

    async def awrite(self, values: Rows) -> Counts:
        sent = self.reorder(values) if self.reorder else values

        async def attempt() -> Counts:
            if self.aconnection is None:
                self.aconnection = await self.db.async_engine.connect()
            connection = self.aconnection
            try:
                async with connection.begin():
                    counts = await self._achunk(connection, sent, len(values))
                    note_written(connection.sync_connection, [self.plan.table.fullname])
                    return counts
            except BaseException:
                await self.aclose()
                raise

        try:
            return await self._aretried(attempt)
        except _copy.NeedsText as exc:
            self._to_text(exc)
            return await self._aretried(attempt)

    async def _aretried(self, attempt: Callable[[], Awaitable[Counts]]) -> Counts:
        try:
            return await self.db.retry.acall(attempt)
        except RetryExhausted as exc:
            raise self._error(exc.last_error or exc, exc.attempts) from exc
        except DBAPIError as exc:
            raise self._error(exc, 1) from exc

    async def aclose(self) -> None:
        """Give the async connection back to the pool."""
        if self.aconnection is not None:
            connection, self.aconnection = self.aconnection, None
            await connection.close()

    async def _achunk(self, connection: AsyncConnection, values: Rows, sent: int) -> Counts:
        raw = await connection.get_raw_connection()
        driver = raw.driver_connection
        sync = connection.sync_connection
        assert sync is not None  # noqa: S101 - an open AsyncConnection has its sync connection
        if self.backend == "postgresql":
            if self.pg is None:
                self.pg = await _copy.CopyPlan.aload(driver, self.plan)
            try:
                return await _copy.awrite(driver, self.pg, values)
            except _copy.DRIVER_ERRORS as exc:
                if _copy.is_broken(driver):
                    exc._buttress_invalidated = True  # type: ignore[attr-defined]
                    await connection.invalidate()
                raise _driver_error(sync, exc, self.pg.describe) from exc
        try:
            cursor = await driver.executemany(self.sqlite_sql, values)  # type: ignore[union-attr]
            return _sqlite_counts(self.plan, sent, cursor.rowcount)
        except sqlite3.Error as exc:
            raise _driver_error(sync, exc, self.sqlite_sql) from exc

    # errors

    def _to_text(self, error: _copy.NeedsText) -> None:
        """Binary COPY could not send a value: the rest of the call goes in the text format."""
        if self.pg is None or not self.pg.binary:
            raise ValidationError(
                f"a value of {self.plan.table.fullname} cannot be sent to the database: {error}",
                field="rows",
            ) from error
        self.pg = self.pg.text()

    def _retried(self, call: Callable[[], Counts]) -> Counts:
        try:
            return call()
        except RetryExhausted as exc:
            raise self._error(exc.last_error or exc, exc.attempts) from exc
        except DBAPIError as exc:
            raise self._error(exc, 1) from exc

    def _error(self, error: BaseException, attempts: int) -> BaseException:
        mapped = translate(error, backend=self.backend, attempts=attempts)
        if isinstance(mapped, (IntegrityError, DataError)):
            detail = str(mapped.orig).strip().splitlines()[0] if mapped.orig is not None else str(mapped)
            return ValidationError(
                f"the database refused a row of {self.plan.table.fullname} ({detail}); "
                "the chunk holding it was rolled back",
                field="rows",
                error_code="integrity_violation" if isinstance(mapped, IntegrityError) else "invalid_value",
                context={"sqlstate": sqlstate_of(mapped), "table": self.plan.table.fullname},
            )
        return mapped


# -- the loops --------------------------------------------------------------------------------------


def _iterate(rows: object) -> Iterator[Any]:
    if isinstance(rows, (str, bytes, Mapping)) or not isinstance(rows, Iterable):
        raise ValidationError(
            f"rows must be an iterable of mappings (a list, a generator), got {type(rows).__name__}; "
            "e.g. [{'id': 1, 'name': 'a'}]",
            field="rows",
        )
    return iter(rows)


class _Totals:
    def __init__(self) -> None:
        self.rows = 0
        self.chunks = 0
        self.inserted: int | None = 0
        self.updated: int | None = 0

    def add(self, counts: Counts) -> None:
        sent, inserted, updated = counts
        self.rows += sent
        self.chunks += 1
        self.inserted = None if inserted is None or self.inserted is None else self.inserted + inserted
        self.updated = None if updated is None or self.updated is None else self.updated + updated

    def result(self, seconds: float) -> BulkResult:
        return BulkResult(self.rows, self.chunks, seconds, self.inserted, self.updated)


def run(
    db: Database, spec_: Spec, rows: Iterable[Mapping[str, Any]], progress: Progress | None
) -> BulkResult:
    """Write ``rows`` as ``spec_`` says, chunk by chunk (the sync loop)."""
    clock = db.retry.clock
    start = clock.monotonic()
    iterator = _iterate(rows)
    totals = _Totals()
    writer: _Writer | None = None
    try:
        while chunk := list(itertools.islice(iterator, spec_.chunk_size)):
            if writer is None:
                writer = _Writer(db, plan(spec_, chunk[0], db.engine.dialect))
            totals.add(writer.write(writer.plan.convert(chunk, totals.rows)))
            if progress is not None:
                progress(totals.rows)
    finally:
        if writer is not None:
            writer.close()
    return totals.result(clock.monotonic() - start)


async def _achunks(rows: object, size: int) -> AsyncIterator[list[Any]]:
    if isinstance(rows, AsyncIterable):
        chunk: list[Any] = []
        async for row in rows:
            chunk.append(row)
            if len(chunk) == size:
                yield chunk
                chunk = []
        if chunk:
            yield chunk
        return
    iterator = _iterate(rows)
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk


async def arun(
    db: Database,
    spec_: Spec,
    rows: Iterable[Mapping[str, Any]] | AsyncIterable[Mapping[str, Any]],
    progress: Progress | None,
) -> BulkResult:
    """The async loop of :func:`run`: ``rows`` may also be an async iterable."""
    clock = db.retry.clock
    start = clock.monotonic()
    totals = _Totals()
    writer: _Writer | None = None
    try:
        async for chunk in _achunks(rows, spec_.chunk_size):
            if writer is None:
                writer = _Writer(db, plan(spec_, chunk[0], db.async_engine.dialect))
            totals.add(await writer.awrite(writer.plan.convert(chunk, totals.rows)))
            if progress is not None:
                progress(totals.rows)
    finally:
        if writer is not None:
            await writer.aclose()
    return totals.result(clock.monotonic() - start)

"""Bulk writes: insert, upsert and update any number of rows, chunk by chunk, one retried transaction each.

Rows are mappings keyed by column key, taken from any iterable (or, for the ``a`` twins, async iterable)
``chunk_size`` at a time, so memory holds one chunk whatever the input's length. Every row of a call has
the columns of the first row. A chunk is checked and converted (:mod:`buttress.db._bulk_plan`: the
columns' SQLAlchemy bind processors, so type decorators, JSON and SQLite dates behave as in a statement),
then written in its own transaction through ``db.retry``: a serialization failure, deadlock,
lost connection or SQLite busy rolls the chunk back and sends it again (its rows stay in memory until it
commits). PostgreSQL writes by binary COPY through the pooled connection (:mod:`buttress.db._copy`);
SQLite by ``executemany`` of one compiled statement. Within one chunk, when two rows carry the same
conflict (upsert) or key (update) values, the last one wins, on both databases.

Caller mistakes raise :class:`~buttress.errors.ValidationError` and write nothing of the chunk holding
them (chunks before it are committed; a mistake in the first chunk therefore writes nothing): checked
before the chunk is sent, but for a PostgreSQL insert's rows as wide as the first, whose keys are found
as COPY sends them (the error aborts the COPY). A row the
database refuses (a NULL in a NOT NULL column, a failed check or foreign key) rolls its chunk back and
raises ``ValidationError`` with ``error_code="integrity_violation"`` (a value out of its column's range
or unparsable: ``"invalid_value"``); a unique violation raises ``ConflictError``; other errors leave as
:func:`~buttress.db.translate` maps them.
"""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Iterator,
    Mapping,
)
from dataclasses import dataclass
from operator import itemgetter
from typing import TYPE_CHECKING, Any

from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from buttress.db import _copy
from buttress.db._bulk_plan import DEFAULT_CHUNK_SIZE, Plan, Rows, Spec, plan, spec
from buttress.db._errors import sqlstate_of, translate
from buttress.db._writes import note_written
from buttress.errors import RetryExhausted, ValidationError

if TYPE_CHECKING:
    from buttress.db._database import Database

__all__ = ["DEFAULT_CHUNK_SIZE", "BulkResult", "arun", "run", "spec"]

Progress = Callable[[int], object]


@dataclass(frozen=True, slots=True)
class BulkResult:
    """What a bulk write did: ``rows`` taken from the input and written, in ``chunks`` transactions.

    ``inserted``/``updated``: rows the database inserted and updated. An insert inserts every row; an
    update counts the rows its keys matched; an upsert counts both on PostgreSQL (from the transaction's
    table statistics; ``None`` with ``track_counts`` off) and leaves them ``None`` on SQLite, whose
    ``executemany`` reports only rows affected (equal to ``rows``).
    """

    rows: int
    chunks: int
    seconds: float
    inserted: int | None
    updated: int | None


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


def _driver_error(
    connection: Connection, error: Exception, sql: str, *, invalidated: bool = False
) -> DBAPIError:
    """A raw driver error as SQLAlchemy would have wrapped it, so retry and translation read it alike;
    ``invalidated``: the connection was lost (a retryable failure)."""
    dialect = connection.dialect
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
            try:
                if self.pg is None:
                    self.pg = _copy.CopyPlan.load(driver, self.plan)
                return _copy.write(driver, self.pg, values)
            except _copy.DRIVER_ERRORS as exc:
                lost = _copy.is_broken(driver)
                if lost:
                    connection.invalidate()
                raise _driver_error(connection, exc, self._sql(), invalidated=lost) from exc
        cursor = driver.cursor()  # type: ignore[union-attr]
        try:
            cursor.executemany(self.sqlite_sql, values)
            return _sqlite_counts(self.plan, sent, cursor.rowcount)
        except sqlite3.Error as exc:
            raise _driver_error(connection, exc, self.sqlite_sql) from exc
        finally:
            cursor.close()

    def _sql(self) -> str:
        """The SQL a chunk sends, for errors (no values)."""
        return self.pg.describe if self.pg is not None else self.sqlite_sql

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
            try:
                if self.pg is None:
                    self.pg = await _copy.CopyPlan.aload(driver, self.plan)
                return await _copy.awrite(driver, self.pg, values)
            except _copy.DRIVER_ERRORS as exc:
                lost = _copy.is_broken(driver)
                if lost:
                    await connection.invalidate()
                raise _driver_error(sync, exc, self._sql(), invalidated=lost) from exc
        try:
            cursor = await driver.executemany(self.sqlite_sql, values)  # type: ignore[union-attr]
            rowcount = cursor.rowcount
            await cursor.close()
            return _sqlite_counts(self.plan, sent, rowcount)
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

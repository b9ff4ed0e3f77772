"""Where jobs live: :class:`SqliteJobStore` (the embedded default) and :class:`PostgresJobStore`.

Both run the plans of :mod:`buttress.jobs._plans`, each in one transaction of its own, retried as a unit
on a retryable failure (a serialization failure, a lost connection, SQLite busy) through the database's
transaction retry. Outage policy: jobs are durable, so a store never degrades to memory; what finally
fails arrives as a buttress error, ``BackendUnavailable`` when the database cannot be reached.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, Protocol, TypeVar

from sqlalchemy import Connection, CursorResult, Engine, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from buttress.db import Database, internal_options, translate
from buttress.errors import ButtressError, RetryExhausted
from buttress.health_types import CheckResult
from buttress.jobs._plans import Dialect, Plan, Step
from buttress.resilience import StoreInfo

__all__ = ["JobStore", "PostgresJobStore", "SqlJobStore", "SqliteJobStore", "store_for"]

T = TypeVar("T")


class JobStore(Protocol):
    """The contract of a job store.

    ``run(make)`` / ``await arun(make)`` run the plan ``make()`` returns in one transaction (``make`` is
    called again for each retried attempt) and return its value; a plan's own errors (``QueueFull``,
    ``NotFoundError``) pass through and leave nothing written; a database that cannot be reached raises
    ``BackendUnavailable`` (the outage policy of a durable part: nothing falls back to memory).
    ``dialect`` tells the plans which SQL to speak. ``kind`` is ``sqlite`` or ``postgresql``; ``shared``
    is True (every process on the database sees the same jobs). ``info()`` says where the jobs live,
    ``check()`` whether the database answers (``pass`` or ``fail`` with the reason).
    """

    dialect: Dialect
    db: Database
    kind: str
    shared: bool

    def run(self, make: Callable[[], Plan[T]], *, write: bool = True) -> T: ...
    async def arun(self, make: Callable[[], Plan[T]], *, write: bool = True) -> T: ...
    def info(self) -> StoreInfo: ...
    def check(self) -> CheckResult: ...


def _answer(result: CursorResult[Any], rows: bool) -> Any:
    return result.all() if rows else result.rowcount


def _drive(connection: Connection, plan: Plan[T]) -> T:
    try:
        step = next(plan)
        while True:
            result = connection.execute(step.clause, step.params)
            step = plan.send(_answer(result, step.rows))
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]


async def _adrive(connection: AsyncConnection, plan: Plan[T]) -> T:
    try:
        step = next(plan)
        while True:
            result = await connection.execute(step.clause, step.params)
            step = plan.send(_answer(result, step.rows))
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]


class SqlJobStore:
    """Runs plans on one :class:`~buttress.db.Database`, sync and async."""

    kind: ClassVar[str]
    shared: ClassVar[bool] = True

    def __init__(self, db: Database) -> None:
        self.db = db
        self.dialect = Dialect(db.backend)
        self._writer: Engine = db.engine.execution_options(**internal_options(write=True))
        self._reader: Engine = db.engine.execution_options(**internal_options())
        self._awriter: AsyncEngine = db.async_engine.execution_options(**internal_options(write=True))
        self._areader: AsyncEngine = db.async_engine.execution_options(**internal_options())

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.db.urls.sync.render_as_string(hide_password=True)}>"

    def run(self, make: Callable[[], Plan[T]], *, write: bool = True) -> T:
        """The value of plan ``make()`` run in one transaction (retried as a unit)."""
        engine = self._writer if write else self._reader

        def attempt() -> T:
            with engine.begin() as connection:
                return _drive(connection, make())

        try:
            return self.db.retry.call(attempt)
        except RetryExhausted as exc:
            raise translate(exc.last_error or exc, backend=self.db.backend, attempts=exc.attempts) from exc
        except DBAPIError as exc:
            raise translate(exc, backend=self.db.backend) from exc

    async def arun(self, make: Callable[[], Plan[T]], *, write: bool = True) -> T:
        """Async :meth:`run`."""
        engine = self._awriter if write else self._areader

        async def attempt() -> T:
            async with engine.begin() as connection:
                return await _adrive(connection, make())

        try:
            return await self.db.retry.acall(attempt)
        except RetryExhausted as exc:
            raise translate(exc.last_error or exc, backend=self.db.backend, attempts=exc.attempts) from exc
        except DBAPIError as exc:
            raise translate(exc, backend=self.db.backend) from exc

    def info(self) -> StoreInfo:
        """The kind and the database (password masked); ``available`` from a :meth:`check`."""
        detail = self.db.urls.sync.render_as_string(hide_password=True)
        return StoreInfo(
            kind=self.kind, shared=self.shared, available=self.check().status == "pass", detail=detail
        )

    def check(self) -> CheckResult:
        """One cheap read of the jobs table: ``pass``, or ``fail`` saying why (the password masked)."""

        def probe() -> Plan[None]:
            yield Step(text("SELECT 1 FROM buttress_jobs WHERE 1 = 0"), rows=True)

        try:
            self.run(probe, write=False)
        except ButtressError as exc:
            return CheckResult("fail", f"{type(exc).__name__}: {exc}")
        return CheckResult("pass", f"jobs in {self.kind}")


class SqliteJobStore(SqlJobStore):
    """Jobs in a SQLite file: one machine, any number of processes (writers queue at ``BEGIN IMMEDIATE``)."""

    kind = "sqlite"


class PostgresJobStore(SqlJobStore):
    """Jobs in PostgreSQL: ``FOR UPDATE SKIP LOCKED`` fetches, advisory-locked limits, NOTIFY wake-ups."""

    kind = "postgresql"


def store_for(db: Database) -> SqlJobStore:
    """The store of ``db``'s backend."""
    return PostgresJobStore(db) if db.backend == "postgresql" else SqliteJobStore(db)

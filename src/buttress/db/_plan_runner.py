"""Multi-statement work written once as a plan and run in one retried transaction, sync or async.

A plan is a generator that yields :class:`Step` s and receives each one's answer (its rows, or its row
count); :class:`PlanRunner` runs it on a connection of the sync or the async engine, so SQLite and
PostgreSQL, sync and async, share one body. The capabilities' stores (jobs, files) are runners: each
``run(make)`` calls ``make()`` again for every retried attempt, so a plan never resumes half-done.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import Connection, CursorResult, Engine, Executable
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from buttress.db._errors import translate
from buttress.db._options import internal_options
from buttress.errors import RetryExhausted

if TYPE_CHECKING:
    from buttress.db._database import Database

__all__ = ["Plan", "PlanRunner", "Step"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Step:
    """One statement of a plan; ``rows``: the plan wants its rows back rather than its row count."""

    clause: Executable
    params: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None = None
    rows: bool = False


Plan = Generator[Step, Any, T]


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


class PlanRunner:
    """Runs plans on one :class:`~buttress.db.Database` as untracked internal statements.

    Writes take SQLite's write lock at ``BEGIN IMMEDIATE`` (no upgrade deadlock mid-plan); failures
    arrive as buttress errors (``BackendUnavailable`` when the database cannot be reached), after the
    database's transaction retry has retried the whole plan on serialization failures and busy locks.
    """

    def __init__(self, db: Database) -> None:
        self.db = db
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

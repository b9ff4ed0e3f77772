"""Where jobs live: :class:`SqliteJobStore` (the embedded default) and :class:`PostgresJobStore`.

Both run the plans of :mod:`buttress.jobs._plans`, each in one transaction of its own, retried as a unit
on a retryable failure (a serialization failure, a lost connection, SQLite busy) through the database's
transaction retry. Outage policy: jobs are durable, so a store never degrades to memory; what finally
fails arrives as a buttress error, ``BackendUnavailable`` when the database cannot be reached.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar, Protocol, TypeVar

from sqlalchemy import text

from buttress.db import Database, PlanRunner
from buttress.errors import ButtressError
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


class SqlJobStore(PlanRunner):
    """Runs the queue's plans on one :class:`~buttress.db.Database`, sync and async."""

    kind: ClassVar[str]
    shared: ClassVar[bool] = True

    def __init__(self, db: Database) -> None:
        super().__init__(db)
        self.dialect = Dialect(db.backend)

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

"""The Database: one sync and one async engine, sessions, and transactions retried as a whole unit.

A ``with`` block cannot be run twice (Python has no way to replay its body), so the retried form takes
the unit as a function: ``db.transaction(fn)`` calls ``fn(session)`` in a fresh transaction, commits, and
on a serialization failure (SQLSTATE 40001), a deadlock (40P01), a lost connection (08xxx) or, on SQLite,
a busy database, rolls back and calls ``fn`` again through the resilience :class:`~buttress.resilience.Retry`
(``db.transaction_attempts`` attempts, short exponential backoff with full jitter). ``fn`` must therefore
do nothing outside the database that cannot be repeated. ``db.session()`` is the plain, non-retrying
form for the common case. Both raise the buttress errors of :mod:`buttress.db._errors`, passwords masked.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any, Final, Literal, TypeVar

from sqlalchemy import URL, Engine, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.orm import Session

from buttress.config import DbSettings, Settings, get_settings
from buttress.db._engines import DEFAULT_URL, build_async_engine, build_engine, resolve_urls
from buttress.db._errors import is_retryable, translate
from buttress.db._tracking import QueryTracker
from buttress.errors import RetryExhausted, ValidationError
from buttress.resilience import Backoff, Retry

__all__ = ["Database", "Isolation"]

T = TypeVar("T")
E = TypeVar("E", Engine, AsyncEngine)
Isolation = Literal["SERIALIZABLE", "REPEATABLE READ", "READ COMMITTED", "READ UNCOMMITTED"]
_ISOLATIONS: Final = ("SERIALIZABLE", "REPEATABLE READ", "READ COMMITTED", "READ UNCOMMITTED")
_BACKOFF: Final = Backoff.exponential(0.005, max_delay=0.5)


class Database:
    """A PostgreSQL or SQLite database: ``engine``, ``async_engine``, sessions and retried transactions.

    ``url`` defaults to ``BUTTRESS_DATABASE_URL`` and, when that is unset, to the SQLite file
    ``buttress.db`` in the working directory; without a ``url``, ``settings`` default to the process's
    ``db`` section, with one to :class:`~buttress.config.DbSettings`'s defaults. ``retry`` gives the
    attempts, deadline, backoff and clock of the transaction retry (default: ``transaction_attempts``
    attempts); what is retried is always the database's own classification (:func:`is_retryable`).
    Engines open connections lazily; :meth:`close`/:meth:`aclose` dispose of the pools.
    """

    def __init__(
        self,
        url: str | URL | None = None,
        *,
        settings: DbSettings | None = None,
        retry: Retry | None = None,
    ) -> None:
        if url is None:
            process = get_settings()
            url = process.database_url or DEFAULT_URL
            settings = process.db if settings is None else settings
        if settings is not None and not isinstance(settings, DbSettings):
            raise ValidationError(
                f"settings must be a DbSettings, got {type(settings).__name__}; "
                "e.g. DbSettings(pool_size=10)",
                field="settings",
            )
        self.settings = settings or DbSettings()
        self.urls = resolve_urls(url)
        self.backend = self.urls.backend
        self.engine: Engine = build_engine(self.urls, self.settings)
        self.async_engine: AsyncEngine = build_async_engine(self.urls, self.settings)
        base = retry or Retry(on=is_retryable, attempts=self.settings.transaction_attempts, backoff=_BACKOFF)
        self.retry = Retry(
            on=is_retryable,
            attempts=base.attempts,
            deadline=base.deadline,
            backoff=base.backoff,
            name="db_transaction",
            clock=base.clock,
        )
        self._isolated: dict[str, Engine] = {}
        self._aisolated: dict[str, AsyncEngine] = {}
        # -- query tracking (buttress.db._tracking): statistics, slow log, N+1 incidents --
        self.queries = QueryTracker(self.settings, backend=self.backend)
        self.queries.install(self.engine)
        self.queries.install(self.async_engine.sync_engine)

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> Database:
        """The database of ``settings`` (default: the process's settings): its URL and ``db`` section."""
        settings = settings or get_settings()
        return cls(settings.database_url or DEFAULT_URL, settings=settings.db)

    def __repr__(self) -> str:
        return f"Database({self.urls.masked!r})"

    def info(self) -> dict[str, Any]:
        """What this database is: backend, masked URL, pool sizes and timeouts."""
        return {
            "backend": self.backend,
            "url": self.urls.masked,
            "pool_size": self.settings.pool_size,
            "max_overflow": self.settings.max_overflow,
            "statement_timeout": self.settings.statement_timeout if self.backend == "postgresql" else None,
            "busy_timeout": self.settings.busy_timeout if self.backend == "sqlite" else None,
            "transaction_attempts": self.retry.attempts,
        }

    def _translate(self, error: BaseException, attempts: int = 1) -> BaseException:
        return translate(error, backend=self.backend, attempts=attempts)

    def check(self) -> None:
        """Run ``SELECT 1``; a database that does not answer raises BackendUnavailable."""
        with self.session() as session:
            session.execute(text("SELECT 1"))

    async def acheck(self) -> None:
        """Async :meth:`check`."""
        async with self.asession() as session:
            await session.execute(text("SELECT 1"))

    # -- sessions -----------------------------------------------------------------------------------

    def _engine_for(self, isolation: Isolation | None) -> Engine:
        return _isolated(self.engine, self._isolated, isolation)

    def _aengine_for(self, isolation: Isolation | None) -> AsyncEngine:
        return _isolated(self.async_engine, self._aisolated, isolation)

    @contextmanager
    def session(self, *, isolation: Isolation | None = None) -> Iterator[Session]:
        """A session in one transaction: committed when the block ends, rolled back if it raises.

        Not retried. Database errors leave the block as buttress errors (see the module docstring).
        """
        try:
            with Session(self._engine_for(isolation), expire_on_commit=False) as session, session.begin():
                yield session
        except DBAPIError as exc:
            raise self._translate(exc) from exc

    @asynccontextmanager
    async def asession(self, *, isolation: Isolation | None = None) -> AsyncIterator[AsyncSession]:
        """Async :meth:`session`."""
        try:
            async with (
                AsyncSession(self._aengine_for(isolation), expire_on_commit=False) as session,
                session.begin(),
            ):
                yield session
        except DBAPIError as exc:
            raise self._translate(exc) from exc

    # -- retried transactions -----------------------------------------------------------------------

    def transaction(self, fn: Callable[[Session], T], *, isolation: Isolation | None = None) -> T:
        """Call ``fn(session)`` in a transaction and commit; run it all again on a retryable failure."""
        engine = self._engine_for(isolation)

        def attempt() -> T:
            with Session(engine, expire_on_commit=False) as session, session.begin():
                return fn(session)

        try:
            return self.retry.call(attempt)
        except RetryExhausted as exc:
            raise self._translate(exc.last_error or exc, exc.attempts) from exc
        except DBAPIError as exc:
            raise self._translate(exc) from exc

    async def atransaction(
        self, fn: Callable[[AsyncSession], Awaitable[T]], *, isolation: Isolation | None = None
    ) -> T:
        """Async :meth:`transaction`: awaits ``fn(session)``."""
        engine = self._aengine_for(isolation)

        async def attempt() -> T:
            async with AsyncSession(engine, expire_on_commit=False) as session, session.begin():
                return await fn(session)

        try:
            return await self.retry.acall(attempt)
        except RetryExhausted as exc:
            raise self._translate(exc.last_error or exc, exc.attempts) from exc
        except DBAPIError as exc:
            raise self._translate(exc) from exc

    # -- lifecycle ----------------------------------------------------------------------------------

    def close(self) -> None:
        """Dispose of the sync pool (the async pool needs :meth:`aclose`)."""
        self.engine.dispose()

    async def aclose(self) -> None:
        """Dispose of both pools."""
        await self.async_engine.dispose()
        self.engine.dispose()


def _isolated(engine: E, cache: dict[str, E], isolation: Isolation | None) -> E:
    """``engine`` itself, or its copy at ``isolation`` (sharing its pool), made once per level."""
    if isolation is None:
        return engine
    _check_isolation(isolation)
    copy = cache.get(isolation)
    if copy is None:
        copy = cache[isolation] = engine.execution_options(isolation_level=isolation)
    return copy


def _check_isolation(isolation: object) -> None:
    if isolation not in _ISOLATIONS:
        raise ValidationError(
            f"isolation must be one of {', '.join(_ISOLATIONS)}, got {isolation!r}; "
            "e.g. isolation='SERIALIZABLE'",
            field="isolation",
        )

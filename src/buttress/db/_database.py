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

from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from contextlib import asynccontextmanager, contextmanager
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal, TypeVar

from sqlalchemy import URL, Engine, Select, TextClause, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.orm import Session

from buttress.config import DbSettings, Settings, get_settings
from buttress.db import _bulk
from buttress.db._advice import AdviceReport, Sample
from buttress.db._advise_run import aadvise, advise
from buttress.db._cursor import KeyLike
from buttress.db._engines import DEFAULT_URL, build_async_engine, build_engine, close_engines, resolve_urls
from buttress.db._errors import is_retryable, translate
from buttress.db._pagination import Page, apaginate, paginate
from buttress.db._query_cache import QueryCache
from buttress.db._query_rows import Rows
from buttress.db._replicas import ReplicaRouter
from buttress.db._tracking import QueryTracker
from buttress.db._translated import translated
from buttress.db._workload import workload
from buttress.db._writes import AsyncCommitListener, CommitListener, Commits, announced, session_scope
from buttress.errors import RetryExhausted, ValidationError
from buttress.resilience import Backoff, Retry

if TYPE_CHECKING:
    from buttress.cache import Cache
    from buttress.clock import Clock
    from buttress.db._migration_status import MigrationStatus
    from buttress.observe.metrics import MetricsRegistry

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

    ``db.replicas`` routes ``session(read_only=True)`` to the read replicas of ``settings.replicas``
    (PostgreSQL only); ``clock`` (lag, breaker cool-down), ``cache`` (positions of ``key``) and ``metrics``
    are its, defaulting to the system clock and the process's cache and registry.
    """

    def __init__(
        self,
        url: str | URL | None = None,
        *,
        settings: DbSettings | None = None,
        retry: Retry | None = None,
        clock: Clock | None = None,
        cache: Cache | None = None,
        metrics: MetricsRegistry | None = None,
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
        # -- read replicas (PostgreSQL only; _replicas.py) --
        self.replicas = ReplicaRouter(self, clock=clock, cache=cache, metrics=metrics)
        # -- commit announcements and the query cache (see _writes.py, _query_cache.py) --
        self.commits = Commits(self.engine, self.async_engine)
        self.query_cache = QueryCache(self)
        if self.settings.query_cache:
            self.commits.on_commit(self.query_cache.bump, self.query_cache.abump)
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

    @cached_property
    def scoped_engine(self) -> Engine:
        """The engine of the container's scoped sessions: the same pool, errors as buttress errors."""
        return translated(self.engine, self.backend)

    @cached_property
    def scoped_async_engine(self) -> AsyncEngine:
        """Async :attr:`scoped_engine`."""
        return translated(self.async_engine, self.backend)

    def _engine_for(self, isolation: Isolation | None) -> Engine:
        return _isolated(self.engine, self._isolated, isolation)

    def _aengine_for(self, isolation: Isolation | None) -> AsyncEngine:
        return _isolated(self.async_engine, self._aisolated, isolation)

    @contextmanager
    def session(
        self, *, isolation: Isolation | None = None, read_only: bool = False, key: str | None = None
    ) -> Iterator[Session]:
        """A session in one transaction: committed when the block ends, rolled back if it raises.

        Not retried. Database errors leave the block as buttress errors (see the module docstring).
        ``read_only=True`` lets a replica serve it; ``key`` ties its reads and writes to the other
        sessions of that key (read-your-writes, see ``docs/db-replicas.md``).
        """
        # -- read replicas --
        if read_only:
            with self.replicas.read_session(isolation, key) as session:
                yield session
            return
        if self.replicas.recording(key):
            try:
                with (
                    self.replicas.write_session(self._engine_for(isolation), key) as session,
                    session_scope(session),
                ):
                    yield session
            except DBAPIError as exc:
                raise self._translate(exc) from exc
            return
        try:
            with (
                Session(self._engine_for(isolation), expire_on_commit=False) as session,
                session.begin(),
                session_scope(session),
            ):
                yield session
        except DBAPIError as exc:
            raise self._translate(exc) from exc

    @asynccontextmanager
    async def asession(
        self, *, isolation: Isolation | None = None, read_only: bool = False, key: str | None = None
    ) -> AsyncIterator[AsyncSession]:
        """Async :meth:`session`."""
        # -- read replicas --
        if read_only:
            async with self.replicas.aread_session(isolation, key) as session:
                yield session
            return
        if self.replicas.recording(key):
            try:
                async with (
                    announced(self.commits),
                    self.replicas.awrite_session(self._aengine_for(isolation), key) as session,
                ):
                    with session_scope(session):
                        yield session
            except DBAPIError as exc:
                raise self._translate(exc) from exc
            return
        try:
            async with (
                announced(self.commits),
                AsyncSession(self._aengine_for(isolation), expire_on_commit=False) as session,
                session.begin(),
            ):
                with session_scope(session):
                    yield session
        except DBAPIError as exc:
            raise self._translate(exc) from exc

    # -- retried transactions -----------------------------------------------------------------------

    def transaction(
        self, fn: Callable[[Session], T], *, isolation: Isolation | None = None, key: str | None = None
    ) -> T:
        """Call ``fn(session)`` in a transaction and commit; run it all again on a retryable failure.

        ``key``: a write under it is seen by later ``read_only`` sessions of the same key.
        """
        engine = self._engine_for(isolation)

        def attempt() -> T:
            with Session(engine, expire_on_commit=False) as session, session.begin(), session_scope(session):
                return fn(session)

        if self.replicas.recording(key):  # -- read replicas --
            attempt = self.replicas.unit(engine, fn, key)

        try:
            return self.retry.call(attempt)
        except RetryExhausted as exc:
            raise self._translate(exc.last_error or exc, exc.attempts) from exc
        except DBAPIError as exc:
            raise self._translate(exc) from exc

    async def atransaction(
        self,
        fn: Callable[[AsyncSession], Awaitable[T]],
        *,
        isolation: Isolation | None = None,
        key: str | None = None,
    ) -> T:
        """Async :meth:`transaction`: awaits ``fn(session)``."""
        engine = self._aengine_for(isolation)

        async def attempt() -> T:
            async with AsyncSession(engine, expire_on_commit=False) as session, session.begin():
                with session_scope(session):
                    return await fn(session)

        if self.replicas.recording(key):  # -- read replicas --
            attempt = self.replicas.aunit(engine, fn, key)

        try:
            async with announced(self.commits):
                return await self.retry.acall(attempt)
        except RetryExhausted as exc:
            raise self._translate(exc.last_error or exc, exc.attempts) from exc
        except DBAPIError as exc:
            raise self._translate(exc) from exc

    # -- buttress's own schema ---------------------------------------------------------------------

    def upgrade(self, revision: str = "head", *, locations: Sequence[str | Path] = ()) -> MigrationStatus:
        """Create or update buttress's own tables (alembic, under a lock); see :mod:`buttress.db._migrate`."""
        from buttress.db._migrate import upgrade  # noqa: PLC0415 - alembic loads only when migrating

        return upgrade(self, revision, locations=locations)

    async def aupgrade(
        self, revision: str = "head", *, locations: Sequence[str | Path] = ()
    ) -> MigrationStatus:
        """Async :meth:`upgrade`."""
        from buttress.db._migrate import aupgrade  # noqa: PLC0415 - alembic loads only when migrating

        return await aupgrade(self, revision, locations=locations)

    def migration_status(self, *, locations: Sequence[str | Path] = ()) -> MigrationStatus:
        """The revision this database is at, buttress's head, and what an upgrade would run."""
        from buttress.db._migrate import migration_status  # noqa: PLC0415 - alembic loads only when migrating

        return migration_status(self, locations=locations)

    def upgrade_sql(self, revision: str = "head", *, locations: Sequence[str | Path] = ()) -> str:
        """The SQL an upgrade from nothing to ``revision`` runs here, for a DBA to review; nothing is run."""
        from buttress.db._migrate import render_upgrade_sql  # noqa: PLC0415 - alembic loads only when migrating

        return render_upgrade_sql(self.backend, revision, locations=locations)

    # -- index advice (logic in _advice.py, _plans.py, _sqlite_plans.py, _advise_run.py) ---------------

    def advise(
        self, samples: Iterable[Sample | str] | None = None, *, min_saving: float = 0.5
    ) -> AdviceReport:
        """Indexes that would speed up ``samples``, verified with hypopg on PostgreSQL when it is there.

        Without ``samples``, the statements tracked in :attr:`queries` that cost the most in total and
        those in its slow log. Plans each statement (never runs it, never ANALYZE) in one read-only
        transaction; an index is advised only if the planner's cost drops by at least ``min_saving``.
        Without hypopg, and on SQLite, the advice says it is unverified. See docs/db-advice.md.
        """
        return advise(self, workload(self.queries) if samples is None else samples, min_saving)

    async def aadvise(
        self, samples: Iterable[Sample | str] | None = None, *, min_saving: float = 0.5
    ) -> AdviceReport:
        """Async :meth:`advise`."""
        return await aadvise(self, workload(self.queries) if samples is None else samples, min_saving)

    # -- keyset pages (buttress.db._pagination) -----------------------------------------------------

    def paginate(
        self,
        stmt: Select[Any],
        *,
        order_by: Sequence[Any],
        after: str | None = None,
        before: str | None = None,
        limit: int = 50,
        key: KeyLike | None = None,
    ) -> Page[Any]:
        """One keyset page of ``stmt`` read in its own session (see :func:`buttress.db.paginate`).

        ``key`` defaults to this database's ``cursor_key`` setting, then to ``security.secret_key``.
        """
        with self.session() as session:
            return paginate(
                session,
                stmt,
                order_by=order_by,
                after=after,
                before=before,
                limit=limit,
                key=key if key is not None else self.settings.cursor_key,
            )

    async def apaginate(
        self,
        stmt: Select[Any],
        *,
        order_by: Sequence[Any],
        after: str | None = None,
        before: str | None = None,
        limit: int = 50,
        key: KeyLike | None = None,
    ) -> Page[Any]:
        """Async :meth:`paginate`."""
        async with self.asession() as session:
            return await apaginate(
                session,
                stmt,
                order_by=order_by,
                after=after,
                before=before,
                limit=limit,
                key=key if key is not None else self.settings.cursor_key,
            )

    # -- commit announcements and the query cache ---------------------------------------------------

    def on_commit(
        self, listener: CommitListener, alistener: AsyncCommitListener | None = None
    ) -> Callable[[], None]:
        """Call ``listener(tables)`` after every committed transaction that wrote tables; the remover.

        ``alistener`` is awaited instead after async commits (see :class:`~buttress.db._writes.Commits`).
        """
        return self.commits.on_commit(listener, alistener)

    def cached(
        self,
        stmt: Select[Any] | TextClause,
        *,
        params: Mapping[str, Any] | None = None,
        ttl: float | None = 60.0,
        tables: Iterable[str] | None = None,
    ) -> Rows:
        """The rows of the SELECT ``stmt``, from the query cache while the tables it reads are unchanged."""
        return self.query_cache.fetch(stmt, params=params, ttl=ttl, tables=tables)

    async def acached(
        self,
        stmt: Select[Any] | TextClause,
        *,
        params: Mapping[str, Any] | None = None,
        ttl: float | None = 60.0,
        tables: Iterable[str] | None = None,
    ) -> Rows:
        """Async :meth:`cached`."""
        return await self.query_cache.afetch(stmt, params=params, ttl=ttl, tables=tables)

    # -- bulk writes (buttress.db._bulk) -------------------------------------------------------------

    def bulk_insert(
        self,
        target: Any,
        rows: Iterable[Mapping[str, Any]],
        *,
        chunk_size: int = _bulk.DEFAULT_CHUNK_SIZE,
        progress: Callable[[int], object] | None = None,
    ) -> _bulk.BulkResult:
        """Insert ``rows`` (mappings) into ``target`` (a Table or mapped class), chunk by chunk.

        Each chunk is one transaction, retried as :meth:`transaction` is; ``progress(rows_done)`` runs
        after each commit. PostgreSQL: binary COPY; SQLite: executemany. See :mod:`buttress.db._bulk`.
        """
        spec = _bulk.spec("insert", target, chunk_size=chunk_size, progress=progress)
        return _bulk.run(self, spec, rows, progress)

    def bulk_upsert(
        self,
        target: Any,
        rows: Iterable[Mapping[str, Any]],
        *,
        conflict: Sequence[str],
        update: Sequence[str] | None = None,
        chunk_size: int = _bulk.DEFAULT_CHUNK_SIZE,
        progress: Callable[[int], object] | None = None,
    ) -> _bulk.BulkResult:
        """Insert ``rows``, or on a ``conflict`` (unique columns) set ``update`` (default: every other
        column of the rows). Within a chunk the last row of a key wins. As :meth:`bulk_insert` otherwise."""
        spec = _bulk.spec(
            "upsert", target, conflict=conflict, update=update, chunk_size=chunk_size, progress=progress
        )
        return _bulk.run(self, spec, rows, progress)

    def bulk_update(
        self,
        target: Any,
        rows: Iterable[Mapping[str, Any]],
        *,
        key: Sequence[str],
        chunk_size: int = _bulk.DEFAULT_CHUNK_SIZE,
        progress: Callable[[int], object] | None = None,
    ) -> _bulk.BulkResult:
        """Set the rows' other columns on the rows of ``target`` matching their ``key`` columns.

        Within a chunk the last row of a key wins; ``updated`` counts the rows matched."""
        spec = _bulk.spec("update", target, key=key, chunk_size=chunk_size, progress=progress)
        return _bulk.run(self, spec, rows, progress)

    async def abulk_insert(
        self,
        target: Any,
        rows: Iterable[Mapping[str, Any]] | AsyncIterable[Mapping[str, Any]],
        *,
        chunk_size: int = _bulk.DEFAULT_CHUNK_SIZE,
        progress: Callable[[int], object] | None = None,
    ) -> _bulk.BulkResult:
        """Async :meth:`bulk_insert`; ``rows`` may be an async iterable."""
        spec = _bulk.spec("insert", target, chunk_size=chunk_size, progress=progress)
        return await _bulk.arun(self, spec, rows, progress)

    async def abulk_upsert(
        self,
        target: Any,
        rows: Iterable[Mapping[str, Any]] | AsyncIterable[Mapping[str, Any]],
        *,
        conflict: Sequence[str],
        update: Sequence[str] | None = None,
        chunk_size: int = _bulk.DEFAULT_CHUNK_SIZE,
        progress: Callable[[int], object] | None = None,
    ) -> _bulk.BulkResult:
        """Async :meth:`bulk_upsert`; ``rows`` may be an async iterable."""
        spec = _bulk.spec(
            "upsert", target, conflict=conflict, update=update, chunk_size=chunk_size, progress=progress
        )
        return await _bulk.arun(self, spec, rows, progress)

    async def abulk_update(
        self,
        target: Any,
        rows: Iterable[Mapping[str, Any]] | AsyncIterable[Mapping[str, Any]],
        *,
        key: Sequence[str],
        chunk_size: int = _bulk.DEFAULT_CHUNK_SIZE,
        progress: Callable[[int], object] | None = None,
    ) -> _bulk.BulkResult:
        """Async :meth:`bulk_update`; ``rows`` may be an async iterable."""
        spec = _bulk.spec("update", target, key=key, chunk_size=chunk_size, progress=progress)
        return await _bulk.arun(self, spec, rows, progress)

    # -- lifecycle ----------------------------------------------------------------------------------

    def close(self) -> None:
        """Dispose of every pool, the replicas' too; prefer :meth:`aclose` in async code."""
        close_engines(self.engine, self.async_engine)
        self.replicas.close()

    async def aclose(self) -> None:
        """Dispose of every pool."""
        await self.async_engine.dispose()
        self.engine.dispose()
        await self.replicas.aclose()


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

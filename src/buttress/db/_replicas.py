"""Read replicas (PostgreSQL only): reads opted in go to a healthy replica that has seen the reader's writes.

Routing, for ``db.session(read_only=True)`` / ``db.asession(read_only=True)``:

1. The position the read must see is the highest of its :func:`~buttress.db.consistent` scope's and its
   ``key``'s (0 when neither has written).
2. A replica qualifies when its lag is within ``max_lag``, its breaker admits the read, and (when there is
   a position) it has replayed it. The replicas are tried in turn (round robin).
3. None qualifies while a position is needed: the lagging-behind replicas are re-checked (their cached
   replay position may just be old) and tried again; still none: the primary serves the read.

Every other session goes to the primary; when a scope is open or a ``key`` is given, a transaction that
wrote (it was given a transaction id) records the primary's insert position after its commit in the
scope, and under the key in the cache. See :mod:`buttress.db._replica_lsn` for why that position is
enough, :mod:`buttress.db._replica_set` for how lag is measured and :mod:`buttress.db._replica_session`
for failover. Metrics (label ``replica``: ``replica1``... or ``primary``, never a URL):
``buttress_db_replica_lag_seconds``, ``buttress_db_replica_reads_total``,
``buttress_db_replica_failovers_total``.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, TypeVar

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.orm import Session

from buttress.clock import SYSTEM_CLOCK, Clock
from buttress.db._replica_lsn import (
    INSERT_LSN,
    UNKNOWN_WRITE,
    WROTE,
    Consistency,
    KeyPositions,
    check_key,
    consistent,
    current_scope,
)
from buttress.db._replica_session import ROUTE, ReadRoute, ReadSession
from buttress.db._replica_set import Replica, ReplicaSet
from buttress.errors import CircuitOpen, ValidationError

if TYPE_CHECKING:
    from contextlib import AbstractContextManager

    from buttress.cache import Cache
    from buttress.db._database import Database
    from buttress.observe.metrics import MetricsRegistry

__all__ = ["ReplicaRouter", "Target"]

T = TypeVar("T")
PRIMARY: Final = "primary"


@dataclass(eq=False)
class Target:
    """The server one read runs on: a replica (with its breaker permit) or the primary (``replica=None``)."""

    replica: Replica | None
    permit: Any = None
    started: float = 0.0
    seen: int = 0  # what the replica had replayed when chosen: a failover must not go back behind it

    @property
    def name(self) -> str:
        return PRIMARY if self.replica is None else self.replica.name


class ReplicaRouter:
    """``db.replicas``: routes reads, remembers write positions, reports replica health.

    ``clock`` measures lag and the breakers' cool-down; ``cache`` holds the positions of keys (default:
    the process's :func:`~buttress.cache.get_cache`, so a Redis cache shares them between processes);
    ``metrics`` default to the process's registry.
    """

    def __init__(
        self,
        db: Database,
        *,
        clock: Clock | None = None,
        cache: Cache | None = None,
        metrics: MetricsRegistry | None = None,
    ) -> None:
        settings = db.settings
        if settings.replicas and db.backend != "postgresql":
            raise ValidationError(
                f"replicas are PostgreSQL only, and this database is {db.backend} ({db.urls.masked}); "
                "leave BUTTRESS_DB__REPLICAS empty or point BUTTRESS_DATABASE_URL at a PostgreSQL primary",
                field="replicas",
            )
        self._db = db
        self.clock = clock or SYSTEM_CLOCK
        self.enabled = bool(settings.replicas)
        self._cache = cache
        self._keys: KeyPositions | None = None
        self._turn = itertools.count()
        self._primary_reads: dict[tuple[bool, str | None], Any] = {}
        if not self.enabled:
            self.set = ReplicaSet(settings, clock=self.clock, metrics=None)
            return
        if metrics is None:
            from buttress.observe.metrics import get_metrics  # noqa: PLC0415 - only when replicas exist

            metrics = get_metrics()
        self.set = ReplicaSet(settings, clock=self.clock, metrics=metrics)
        self.reads_metric = metrics.counter(
            "buttress_db_replica_reads_total",
            "Read sessions routed, by server: a replica's name from settings, or primary.",
            labels=("replica",),
        )
        self.failovers_metric = metrics.counter(
            "buttress_db_replica_failovers_total",
            "Reads that left a replica which failed under them and ran on another server.",
            labels=("replica",),
        )
        self.lag_metric = metrics.gauge(
            "buttress_db_replica_lag_seconds",
            "Seconds a replica trails the primary, measured from WAL positions at each check.",
            labels=("replica",),
        )

    def __repr__(self) -> str:
        return f"ReplicaRouter(replicas={[r.name for r in self.set.replicas]})"

    # -- consistency -----------------------------------------------------------------------------------

    @staticmethod
    def consistent() -> AbstractContextManager[Consistency]:
        """A read-your-writes scope (:func:`buttress.db.consistent`): reads in it see its writes."""
        return consistent()

    @property
    def keys(self) -> KeyPositions:
        """The key positions, in the cache (made on first use)."""
        if self._keys is None:
            cache = self._cache
            if cache is None:
                from buttress.cache import get_cache  # noqa: PLC0415 - only when a key is used

                cache = get_cache()
            settings = self._db.settings
            ttl = 2 * (settings.max_lag + settings.replica_check_interval) + 10.0
            self._keys = KeyPositions(cache, self._db.urls.masked, ttl)
        return self._keys

    def recording(self, key: str | None) -> bool:
        """Whether a write must record its position: replicas exist and a scope or a key wants it."""
        if key is not None:
            check_key(key)
        return self.enabled and (key is not None or current_scope() is not None)

    def need(self, key: str | None) -> int:
        """The WAL position a read of the current scope and ``key`` must see."""
        scope = current_scope()
        need = scope.need(id(self)) if scope is not None else 0
        if key is not None:
            need = max(need, self.keys.get(key))
        return need

    async def aneed(self, key: str | None) -> int:
        scope = current_scope()
        need = scope.need(id(self)) if scope is not None else 0
        if key is not None:
            need = max(need, await self.keys.aget(key))
        return need

    def _remember(self, lsn: int) -> None:
        scope = current_scope()
        if scope is not None:
            scope.raise_to(id(self), lsn)

    # -- routing ---------------------------------------------------------------------------------------

    def route(self, need: int, left: set[str]) -> Target:
        """The server for a read that must see ``need``, avoiding the replicas in ``left`` (sync)."""
        if not self.enabled:
            return Target(None)
        if self.set.due() and self.set.begin_check():
            self._check_locked()
        target = self._pick(need, left)
        if target is None and need:
            for replica in self._behind(need, left):
                self.set.check_one(replica)
            target = self._pick(need, left)
        return self._count(target)

    async def aroute(self, need: int, left: set[str]) -> Target:
        """Async :meth:`route`."""
        if not self.enabled:
            return Target(None)
        if self.set.due() and self.set.begin_check():
            await self._acheck_locked()
        target = self._pick(need, left)
        if target is None and need:
            for replica in self._behind(need, left):
                await self.set.acheck_one(replica)
            target = self._pick(need, left)
        return self._count(target)

    def _behind(self, need: int, left: set[str]) -> list[Replica]:
        return [
            r
            for r in self.set.replicas
            if r.name not in left and self.set.fresh_enough(r) and (r.replayed is None or r.replayed < need)
        ]

    def _pick(self, need: int, left: set[str]) -> Target | None:
        replicas = self.set.replicas
        start = next(self._turn)
        for step in range(len(replicas)):
            replica = replicas[(start + step) % len(replicas)]
            if replica.name in left or not self.set.fresh_enough(replica):
                continue
            replayed = replica.replayed
            if need and (replayed is None or replayed < need):
                continue
            try:
                permit = replica.breaker.acquire()
            except CircuitOpen:
                continue
            return Target(replica, permit, self.clock.monotonic(), replayed or 0)
        return None

    def _count(self, target: Target | None) -> Target:
        target = target or Target(None)
        self.reads_metric.labels(replica=target.name).inc()
        return target

    def bind_for(self, target: Target, isolation: str | None, *, asynchronous: bool) -> Any:
        """The engine (sync, or the async engine's sync core) a session on ``target`` binds to."""
        engine = self._engine(target, isolation, asynchronous=asynchronous)
        return engine.sync_engine if asynchronous else engine

    def _engine(self, target: Target, isolation: str | None, *, asynchronous: bool) -> Any:
        if target.replica is not None:
            return target.replica.engine_for(isolation, asynchronous=asynchronous)
        return self._primary_read(isolation, asynchronous=asynchronous)

    def _primary_read(self, isolation: str | None, *, asynchronous: bool) -> Any:
        """The primary's engine for reads: READ ONLY transactions on PostgreSQL, like a standby's."""
        copy = self._primary_reads.get((asynchronous, isolation))
        if copy is None:
            base: Engine | AsyncEngine = self._db.async_engine if asynchronous else self._db.engine
            options: dict[str, Any] = {} if isolation is None else {"isolation_level": isolation}
            if self._db.backend == "postgresql":
                options["postgresql_readonly"] = True
            copy = self._primary_reads[asynchronous, isolation] = (
                base.execution_options(**options) if options else base
            )
        return copy

    # -- outcomes --------------------------------------------------------------------------------------

    def done(self, target: Target) -> None:
        """The read on ``target`` finished: its breaker hears a success."""
        if target.replica is not None:
            target.replica.breaker.record_success(target.permit, self.clock.monotonic() - target.started)

    def settle(self, target: Target, error: BaseException) -> None:
        """The read's block raised ``error``: a breaker failure only if the replica itself failed."""
        if target.replica is not None:
            self.set.failed(target.replica, target.permit, error, target.started)

    def leave(self, target: Target, error: BaseException, *, failover: bool = True) -> None:
        """A read leaves ``target`` because it failed under it (``failover``: to run again elsewhere)."""
        replica = target.replica
        if replica is None:
            return
        self.set.failed(replica, target.permit, error, target.started)
        if failover:
            self.failovers_metric.labels(replica=replica.name).inc()

    # -- checks ----------------------------------------------------------------------------------------

    def check(self) -> list[dict[str, Any]]:
        """Measure every replica now (replayed position, lag); the :meth:`status` after it."""
        if self.enabled and self.set.begin_check():
            self._check_locked()
        return self.status()

    async def acheck(self) -> list[dict[str, Any]]:
        """Async :meth:`check`."""
        if self.enabled and self.set.begin_check():
            await self._acheck_locked()
        return self.status()

    def _check_locked(self) -> None:
        primary: int | None = None
        try:
            try:
                with self._db.engine.connect() as connection:
                    primary = connection.execute(INSERT_LSN).scalar()
            except DBAPIError:
                primary = None  # the primary is away: lags keep their last values
            for replica in self.set.replicas:
                self.set.check_one(replica)
        finally:
            self.set.end_check(primary)
            self._export_lag()

    async def _acheck_locked(self) -> None:
        primary: int | None = None
        try:
            try:
                async with self._db.async_engine.connect() as connection:
                    primary = (await connection.execute(INSERT_LSN)).scalar()
            except DBAPIError:
                primary = None
            for replica in self.set.replicas:
                await self.set.acheck_one(replica)
        finally:
            self.set.end_check(primary)
            self._export_lag()

    def _export_lag(self) -> None:
        for replica in self.set.replicas:
            if replica.lag is not None:
                self.lag_metric.labels(replica=replica.name).set(replica.lag)

    def status(self) -> list[dict[str, Any]]:
        """Per replica: name, masked URL, healthy, lag in seconds and bytes, breaker state, replayed LSN."""
        return self.set.status()

    # -- sessions --------------------------------------------------------------------------------------

    @contextmanager
    def read_session(self, isolation: str | None, key: str | None) -> Iterator[Session]:
        """A read-only session on the server :meth:`route` picks, failing over as the module says."""
        db = self._db
        db._engine_for(isolation)  # type: ignore[arg-type] # validates isolation before anything is sent
        if key is not None:
            check_key(key)
        try:
            need = self.need(key) if self.enabled else 0
            target = self.route(need, set())
            session = ReadSession(
                bind=self.bind_for(target, isolation, asynchronous=False), expire_on_commit=False
            )
            route = ReadRoute(self, target, need, isolation, asynchronous=False)
            session.info[ROUTE] = route
            with session:
                try:
                    yield session
                except BaseException as exc:
                    route.abandon(exc)
                    raise
                route.finish(session)
        except DBAPIError as exc:
            raise db._translate(exc) from exc

    @asynccontextmanager
    async def aread_session(self, isolation: str | None, key: str | None) -> AsyncIterator[AsyncSession]:
        """Async :meth:`read_session`."""
        db = self._db
        db._aengine_for(isolation)  # type: ignore[arg-type]
        if key is not None:
            check_key(key)
        try:
            need = await self.aneed(key) if self.enabled else 0
            target = await self.aroute(need, set())
            session = AsyncSession(
                bind=self._engine(target, isolation, asynchronous=True),
                expire_on_commit=False,
                sync_session_class=ReadSession,
            )
            route = ReadRoute(self, target, need, isolation, asynchronous=True)
            session.sync_session.info[ROUTE] = route
            async with session:
                try:
                    yield session
                except BaseException as exc:
                    route.abandon(exc)
                    raise
                await route.afinish(session)
        except DBAPIError as exc:
            raise db._translate(exc) from exc

    @contextmanager
    def write_session(self, engine: Engine, key: str | None) -> Iterator[Session]:
        """A primary session that, after a commit that wrote, records the position in scope and key."""
        with Session(engine, expire_on_commit=False) as session:
            with session.begin():
                yield session
                session.flush()  # ORM changes still pending are part of the write: before the question
                wrote = bool(session.execute(WROTE).scalar())
            if wrote:
                try:
                    lsn = int(session.execute(INSERT_LSN).scalar_one())
                except DBAPIError:
                    lsn = UNKNOWN_WRITE  # committed, position unreadable: its reads go to the primary
                self._remember(lsn)
                if key is not None:
                    self.keys.raise_to(key, lsn)

    @asynccontextmanager
    async def awrite_session(self, engine: AsyncEngine, key: str | None) -> AsyncIterator[AsyncSession]:
        """Async :meth:`write_session`."""
        async with AsyncSession(engine, expire_on_commit=False) as session:
            async with session.begin():
                yield session
                await session.flush()
                wrote = bool((await session.execute(WROTE)).scalar())
            if wrote:
                try:
                    lsn = int((await session.execute(INSERT_LSN)).scalar_one())
                except DBAPIError:
                    lsn = UNKNOWN_WRITE
                self._remember(lsn)
                if key is not None:
                    await self.keys.araise_to(key, lsn)

    def unit(self, engine: Engine, fn: Callable[[Session], T], key: str | None) -> Callable[[], T]:
        """One attempt of ``db.transaction(fn)`` that records its write position."""

        def attempt() -> T:
            with self.write_session(engine, key) as session:
                return fn(session)

        return attempt

    def aunit(
        self, engine: AsyncEngine, fn: Callable[[AsyncSession], Awaitable[T]], key: str | None
    ) -> Callable[[], Coroutine[Any, Any, T]]:
        """Async :meth:`unit`."""

        async def attempt() -> T:
            async with self.awrite_session(engine, key) as session:
                return await fn(session)

        return attempt

    # -- lifecycle -------------------------------------------------------------------------------------

    def close(self) -> None:
        self.set.close()

    async def aclose(self) -> None:
        await self.set.aclose()

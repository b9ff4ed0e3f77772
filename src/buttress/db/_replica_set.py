"""The replicas of one primary: their engines and breakers, what each has replayed, and how far each lags.

Lag is measured in seconds from WAL positions, not from ``pg_last_xact_replay_timestamp()``: that is the
commit time of the last transaction replayed, so on an idle primary it grows forever while the standby is
fully caught up (and it says nothing between commits). Instead each check samples the primary's insert
position with the router's clock, keeping a short history of ``(time, position)``; a replica that has
replayed position ``R`` lags by ``now - t`` for the earliest sample ``t`` whose position exceeds ``R``
(it has not yet shown WAL that existed at ``t``), and by 0 when it has replayed the newest sample. An idle
primary reads 0, a paused standby's lag grows with the clock, and the resolution is the check interval.
The bytes behind (newest sample minus ``R``) are reported beside it.

What a replica has replayed is cached for ``replica_check_interval``: a read with no position to wait for
uses the cache, a read that needs a newer position re-checks before it settles for the primary. A new
connection to a replica (it restarted, say) forgets the cached position, since a restarted standby may
resume from an earlier point than it had shown before.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from sqlalchemy import Engine, event
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from buttress.clock import Clock
from buttress.db._engines import Urls, build_async_engine, build_engine, close_engines, resolve_urls
from buttress.db._errors import sqlstate_of
from buttress.db._replica_lsn import REPLAY_LSN, format_lsn
from buttress.errors import CircuitOpen
from buttress.resilience import CircuitBreaker

if TYPE_CHECKING:
    from buttress.config import DbSettings
    from buttress.observe.metrics import MetricsRegistry

__all__ = ["Replica", "ReplicaSet", "replica_down", "replica_trouble"]

_SAMPLES: Final = 4096
_DOWN_STATES: Final = frozenset({"57P01", "57P02", "57P03"})  # admin/crash shutdown, cannot connect now
_CONFLICT_STATES: Final = frozenset({"40001", "40P01"})  # a standby cancels reads conflicting with replay


def replica_down(error: BaseException) -> bool:
    """Whether ``error`` says the server went away: a failed connect, a lost connection, a shutdown."""
    if not isinstance(error, DBAPIError):
        return False
    if error.connection_invalidated:
        return True
    state = sqlstate_of(error)
    if state is not None:
        return state.startswith("08") or state in _DOWN_STATES
    return type(error.orig).__name__ == "OperationalError"


def replica_trouble(error: BaseException) -> bool:
    """Whether a read that failed on a replica should run elsewhere: the replica is down, or it cancelled
    the read for a conflict with replay (not a fault of the read; not counted against the breaker)."""
    return replica_down(error) or sqlstate_of(error) in _CONFLICT_STATES


@dataclass(eq=False)
class Replica:
    """One hot standby: engines, breaker and the last measured replay position and lag."""

    name: str
    urls: Urls
    engine: Engine
    async_engine: AsyncEngine
    breaker: CircuitBreaker
    replayed: int | None = None
    checked_at: float | None = None
    lag: float | None = None
    behind: int | None = None
    error: str | None = None
    generation: int = 0
    copies: dict[tuple[bool, str | None], Any] = field(default_factory=dict)

    def forget(self) -> None:
        """Drop the cached position (a new connection or a failure): the next read needing one re-checks."""
        self.generation += 1
        self.replayed = None

    def store(self, replayed: int | None, generation: int, now: float) -> None:
        if generation == self.generation:  # no reconnect or failure since the check started
            self.replayed = replayed
        self.checked_at = now
        self.error = None

    def engine_for(self, isolation: str | None, *, asynchronous: bool) -> Any:
        base: Any = self.async_engine if asynchronous else self.engine
        if isolation is None:
            return base
        copy = self.copies.get((asynchronous, isolation))
        if copy is None:
            copy = self.copies[asynchronous, isolation] = base.execution_options(isolation_level=isolation)
        return copy


def _forget_on_connect(engine: Engine, replica: Replica) -> None:
    @event.listens_for(engine, "connect")
    def _connected(_dbapi_connection: Any, _record: Any) -> None:
        replica.forget()


class ReplicaSet:
    """The replicas of ``settings.replicas``, named ``replica1``, ``replica2``... in the metrics."""

    def __init__(self, settings: DbSettings, *, clock: Clock, metrics: MetricsRegistry | None) -> None:
        self.settings = settings
        self.clock = clock
        self.samples: deque[tuple[float, int]] = deque(maxlen=_SAMPLES)
        self.checked_at: float | None = None
        self._lock = threading.Lock()
        self.replicas: list[Replica] = []
        for index, url in enumerate(settings.replicas, start=1):
            urls = resolve_urls(url)
            name = f"replica{index}"
            breaker = CircuitBreaker(
                f"db_{name}",
                consecutive_failures=settings.replica_failures,
                open_duration=settings.replica_cooldown,
                open_duration_max=max(settings.replica_cooldown, 300.0),
                record=replica_down,
                clock=clock,
                metrics=metrics,
            )
            replica = Replica(
                name, urls, build_engine(urls, settings), build_async_engine(urls, settings), breaker
            )
            _forget_on_connect(replica.engine, replica)
            _forget_on_connect(replica.async_engine.sync_engine, replica)
            self.replicas.append(replica)

    # -- checks ----------------------------------------------------------------------------------------

    def due(self) -> bool:
        """Whether the cached lag and positions are older than the check interval (and nobody checks)."""
        checked = self.checked_at
        if checked is not None and self.clock.monotonic() - checked < self.settings.replica_check_interval:
            return False
        return not self._lock.locked()

    def begin_check(self) -> bool:
        """Claim the periodic check (False: another thread or task is doing it)."""
        return self._lock.acquire(blocking=False)

    def end_check(self, primary: int | None) -> None:
        """Record the primary's position sampled by the check and recompute every replica's lag."""
        now = self.clock.monotonic()
        try:
            if primary is not None:
                self.samples.append((now, primary))
                horizon = now - 2 * (self.settings.max_lag + self.settings.replica_check_interval)
                while len(self.samples) > 1 and self.samples[0][0] < horizon:
                    self.samples.popleft()
            for replica in self.replicas:
                self._measure(replica, now)
            self.checked_at = now
        finally:
            self._lock.release()

    def _measure(self, replica: Replica, now: float) -> None:
        replayed = replica.replayed
        if replayed is None or not self.samples:
            return
        newest = self.samples[-1][1]
        replica.behind = max(0, newest - replayed)
        if replayed >= newest:
            replica.lag = 0.0
            return
        first = next(at for at, position in self.samples if position > replayed)
        replica.lag = max(0.0, now - first)

    def check_one(self, replica: Replica) -> None:
        """Read ``replica``'s replayed position through its breaker (sync)."""
        try:
            permit = replica.breaker.acquire()
        except CircuitOpen:  # leave it alone until the cool-down ends
            return
        start = self.clock.monotonic()
        try:
            with replica.engine.connect() as connection:
                generation = replica.generation  # after a new connection's own forget()
                value = connection.execute(REPLAY_LSN).scalar()
        except DBAPIError as exc:
            self.failed(replica, permit, exc, start)
            return
        replica.breaker.record_success(permit, self.clock.monotonic() - start)
        replica.store(None if value is None else int(value), generation, self.clock.monotonic())

    async def acheck_one(self, replica: Replica) -> None:
        """Async :meth:`check_one`."""
        try:
            permit = replica.breaker.acquire()
        except CircuitOpen:
            return
        start = self.clock.monotonic()
        try:
            async with replica.async_engine.connect() as connection:
                generation = replica.generation
                value = (await connection.execute(REPLAY_LSN)).scalar()
        except DBAPIError as exc:
            self.failed(replica, permit, exc, start)
            return
        replica.breaker.record_success(permit, self.clock.monotonic() - start)
        replica.store(None if value is None else int(value), generation, self.clock.monotonic())

    def failed(self, replica: Replica, permit: Any, error: BaseException, start: float) -> None:
        """``replica`` failed a read or a check: tell its breaker and forget its position."""
        replica.breaker.record_failure(permit, error, self.clock.monotonic() - start)
        if replica_down(error):
            replica.forget()
            replica.error = type(error).__name__

    # -- choice ----------------------------------------------------------------------------------------

    def fresh_enough(self, replica: Replica) -> bool:
        """Lag known and within ``max_lag`` (the breaker is asked when a read takes a permit)."""
        lag = replica.lag
        return lag is not None and lag <= self.settings.max_lag

    def healthy(self, replica: Replica) -> bool:
        """Within ``max_lag`` and its breaker not refusing (open with cool-down time left)."""
        if not self.fresh_enough(replica):
            return False
        if replica.breaker.state.value != "open":
            return True
        retry_after = replica.breaker.snapshot().retry_after
        return retry_after is not None and retry_after <= 0

    def status(self) -> list[dict[str, Any]]:
        """Per replica: masked URL, healthy, lag (seconds and bytes), breaker state and replayed LSN."""
        return [
            {
                "name": replica.name,
                "url": replica.urls.masked,
                "healthy": self.healthy(replica),
                "lag_seconds": replica.lag,
                "bytes_behind": replica.behind,
                "breaker": replica.breaker.state.value,
                "replayed_lsn": format_lsn(replica.replayed),
                "last_error": replica.error,
            }
            for replica in self.replicas
        ]

    def close(self) -> None:
        for replica in self.replicas:
            close_engines(replica.engine, replica.async_engine)

    async def aclose(self) -> None:
        for replica in self.replicas:
            await replica.async_engine.dispose()
            replica.engine.dispose()

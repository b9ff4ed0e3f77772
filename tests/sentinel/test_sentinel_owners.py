"""Every Redis owner through a Sentinel URL: the cache (Redis and tiered), the resilience store (limiter and
breaker, with the trip pushed over pub/sub), the event transport, the realtime log, the health probe, and the
pool's limit.

The data lands on the primary the sentinels name (checked on the server itself) and replicates to the replica.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
import uuid

import redis

from buttress._redis import RedisConnection, execute, ping
from buttress.cache._backend import Entry
from buttress.cache._redis import RedisBackend
from buttress.cache._tiered import TieredBackend
from buttress.errors import CircuitOpen
from buttress.observe.health import redis_check
from buttress.observe.metrics import MetricsRegistry
from buttress.realtime import Position
from buttress.realtime._redis_log import RedisTopicLog
from buttress.resilience import CircuitBreaker, RateLimiter, RedisState
from tests._redis_sentinel import SentinelDeployment
from tests.cache._tiered_child import Arrivals, redis_bus

WAIT = 10.0  # upper bound for a push or an event to arrive; tests wait on conditions, never sleep


def _prefix() -> str:
    return f"sentinel-test:{uuid.uuid4().hex}"


def _until(condition: object, timeout: float = WAIT) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)  # polling a real server and real threads
    return True


def test_the_cache_writes_to_the_primary_sync_and_async(
    deployment: SentinelDeployment, redis_url: str
) -> None:
    prefix = _prefix()
    backend = RedisBackend(redis_url, prefix=prefix)
    try:
        backend.set("ns:k", Entry("sync"), 60)
        assert backend.get("ns:k").value == "sync"  # type: ignore[union-attr]

        async def run() -> object:
            await backend.aset("ns:a", Entry({"async": 1}), 60)
            entry = await backend.aget("ns:a")
            await backend.aclose()
            return None if entry is None else entry.value

        assert asyncio.run(run()) == {"async": 1}
        with deployment.data_client(deployment.primary()) as primary:
            assert primary.exists(f"{prefix}:ns:k", f"{prefix}:ns:a") == 2
        replica_port = next(port for port in deployment.data_ports if port != deployment.primary())
        with deployment.data_client(replica_port) as replica:
            assert _until(lambda: replica.exists(f"{prefix}:ns:k") == 1)
        assert backend.available
        assert "data-s3cret" not in repr(backend._connection)
        assert backend.check().status == "pass"
    finally:
        backend.close()


def test_a_tiered_cache_invalidates_another_process_copy_through_sentinel(redis_url: str) -> None:
    prefix, bus_prefix = _prefix(), _prefix()
    buses = [redis_bus(redis_url, bus_prefix), redis_bus(redis_url, bus_prefix)]
    here = TieredBackend(RedisBackend(redis_url, prefix=prefix), bus=buses[0])
    there = TieredBackend(RedisBackend(redis_url, prefix=prefix), bus=buses[1])
    arrivals = Arrivals(buses[1])
    try:
        here.set("ns:k", Entry("old"), 60)
        assert there.get("ns:k").value == "old"  # type: ignore[union-attr]  # now in there's L1
        here.set("ns:k", Entry("new"), 60)
        arrivals.wait(2)  # both sets broadcast an invalidation
        assert there.get("ns:k").value == "new"  # type: ignore[union-attr]
    finally:
        here.close()
        there.close()
        for bus in buses:
            bus.close()


def test_a_shared_limit_and_a_pushed_breaker_trip_through_sentinel(redis_url: str) -> None:
    prefix = _prefix()
    here = RedisState(redis_url, prefix=prefix, metrics=MetricsRegistry())
    there = RedisState(redis_url, prefix=prefix, metrics=MetricsRegistry())
    try:
        limits = [
            RateLimiter("1/minute", burst=3, name="shared", store=state, metrics=MetricsRegistry())
            for state in (here, there)
        ]
        assert [limits[0].try_acquire(), limits[1].try_acquire(), limits[0].try_acquire()] == [True] * 3
        assert not limits[1].try_acquire()  # one bucket for both processes
        options = {"consecutive_failures": 1, "open_duration": 300, "metrics": MetricsRegistry()}
        tripper = CircuitBreaker("shared", store=here, **options)  # type: ignore[arg-type]
        other = CircuitBreaker("shared", store=there, **options)  # type: ignore[arg-type]
        assert other.call(lambda: "ok") == "ok"
        assert there.breaker_feed().subscriber.subscribed.wait(WAIT)
        with contextlib.suppress(ZeroDivisionError):
            tripper.call(lambda: 1 / 0)

        def refused() -> bool:
            try:
                other.call(lambda: "admitted")
            except CircuitOpen:
                return True
            return False

        assert _until(refused)  # the trip reached the other process's copy over pub/sub
        assert here.available
        assert there.available
    finally:
        here.close()
        there.close()


def test_events_fan_out_between_buses_through_sentinel(redis_url: str) -> None:
    prefix = _prefix()
    a, b = redis_bus(redis_url, prefix), redis_bus(redis_url, prefix)
    seen: list[int] = []
    arrived = threading.Event()

    def record(event: object) -> None:
        seen.append(event.payload["i"])  # type: ignore[attr-defined]
        if len(seen) == 20:
            arrived.set()

    try:
        b.subscribe("orders.*", record)
        for i in range(20):
            a.publish("orders.created", {"i": i})
        assert a.flush(WAIT)
        assert arrived.wait(WAIT)
        assert seen == list(range(20))
    finally:
        a.close()
        b.close()


async def test_the_realtime_log_appends_and_replays_through_sentinel(redis_url: str) -> None:
    log = RedisTopicLog(redis_url, prefix=_prefix())
    try:
        assert await asyncio.to_thread(log.wait_connected, WAIT), log.status()
        for n in range(5):
            log.append("t", {"n": n}, 0.0)
        assert await asyncio.to_thread(log.flush, WAIT)
        replay = await log.read_after(Position(log.status()["epoch"], 0), 100)
        assert [entry.data["n"] for entry in replay.entries] == list(range(5))
    finally:
        await log.aclose()


def test_the_health_probe_pings_the_primary(redis_url: str) -> None:
    assert ping(redis_url)
    check = redis_check(redis_url)
    try:
        assert check.fn().status == "pass"
    finally:
        assert check.close is not None
        check.close()


def test_the_pool_limit_waits_then_counts_as_an_outage(redis_url: str) -> None:
    connection = RedisConnection(redis_url, prefix=_prefix(), max_connections=1)
    pool = connection.client().connection_pool
    held = pool.get_connection()
    try:
        started = time.monotonic()
        released = threading.Timer(0.2, pool.release, (held,))
        released.start()
        assert connection.call(execute, "PING") is True  # waited for the release, did not fail
        assert time.monotonic() - started >= 0.15
        held = pool.get_connection()
        assert connection.call(execute, "PING") is not True  # UNAVAILABLE after the pool wait
        assert not connection.available
        assert "No connection available" in connection.last_error
    finally:
        pool.release(held)
        connection.close()


def test_a_database_number_selects_the_database(deployment: SentinelDeployment) -> None:
    connection = RedisConnection(deployment.url(db=5), prefix=_prefix())
    try:
        assert connection.call(execute, "SET", connection.key("db"), "five") is True
        client = redis.Redis(port=deployment.primary(), db=5, password=deployment.password)
        with client:
            assert client.get(connection.key("db")) == b"five"
    finally:
        connection.close()

"""Resilience state on Redis: buttress's one-script-per-decision against a raw GET and the anchors.

Every figure is one decision that crosses the network to the local Redis (127.0.0.1, db 15 unless
``BUTTRESS_TEST_REDIS_URL`` says otherwise), so the floor is one redis-py round trip. Keys live under a
fresh namespace and are deleted afterwards.
"""

from __future__ import annotations

import os
import socket
import sys
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import cast
from urllib.parse import urlsplit

import limits
import limits.storage
import limits.strategies
import pybreaker
import redis
import redis.asyncio
from purgatory import AsyncCircuitBreakerFactory, AsyncRedisUnitOfWork
from purgatory.service._async.repository import AsyncRedisRepository

from benchmarks._harness import Row, Table, fmt
from benchmarks.bench_resilience import (
    ANCHOR_RATE,
    BURST,
    RATE,
    AsyncFn,
    ComparisonTable,
    aok,
    compare,
    compare_async,
    ok,
    row,
)
from buttress._redaction import mask_url_password
from buttress.resilience._breaker import CircuitBreaker
from buttress.resilience._limiter import RateLimiter
from buttress.resilience._redis_state import RedisState

__all__ = ["run"]

REDIS_URL = os.environ.get("BUTTRESS_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
BUDGET_RATIO = 1.15
TITLE = "Resilience on Redis: one decision per call (sync and async)"
GET = "redis-py GET round trip"
BLOCKING_GET = "redis-py GET round trip, BlockingConnectionPool"
POOL = {"max_connections": 50, "socket_timeout": 0.5, "socket_connect_timeout": 0.5}
"""The pool size and timeouts of buttress's own clients, for the limiter rows' raw GETs on both pool kinds."""
LIMITER_ROUNDS = 15
"""Rounds of the limiter rows: a 15 % budget needs more samples than round trips jitter on a busy host."""


def _redis_reachable() -> bool:
    parts = urlsplit(REDIS_URL)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 6379), timeout=1):
            return True
    except OSError:
        return False


@contextmanager
def _namespace(client: redis.Redis) -> Iterator[str]:
    """A fresh key prefix; every key under it (buttress's, limits', pybreaker's, purgatory's) is deleted."""
    namespace = f"buttress-bench-{uuid.uuid4().hex[:12]}"
    try:
        yield namespace
    finally:
        for pattern in (f"{namespace}*", f"cbr::{namespace}*"):
            keys = list(client.scan_iter(match=pattern, count=1000))
            if keys:
                client.delete(*keys)


def _on_redis(state: RedisState, *limiters: RateLimiter) -> None:
    """Every decision must have gone to Redis: serving from the local fallback would flatter the figures."""
    if not state.available or state.policy_calls.value:
        raise RuntimeError(f"Redis was unavailable during the run ({state!r}); the figures would be local")
    for limiter in limiters:
        counts = limiter.telemetry.counts()
        if limiter.is_local or counts["rejected"] or counts["waited"]:
            raise RuntimeError(f"limiter {limiter.name!r} was local, rejected or waited: {counts}")


def _sync_rows(state: RedisState, client: redis.Redis, namespace: str) -> list[Row]:
    get_key = f"{namespace}:get"
    client.set(get_key, b"1")
    limiter = RateLimiter(RATE, burst=BURST, name="bench", store=state)
    breaker = CircuitBreaker("bench", store=state)
    storage = limits.storage.storage_from_string(REDIS_URL, key_prefix=f"{namespace}-limits")
    item = limits.parse(f"{ANCHOR_RATE}/second")
    fixed = limits.strategies.FixedWindowRateLimiter(storage)
    moving = limits.strategies.MovingWindowRateLimiter(storage)
    py_breaker = pybreaker.CircuitBreaker(
        state_storage=pybreaker.CircuitRedisStorage(pybreaker.STATE_CLOSED, client, namespace=namespace)
    )

    def get() -> object:
        return client.get(get_key)

    blocking = redis.Redis.from_pool(redis.BlockingConnectionPool.from_url(REDIS_URL, timeout=1.0, **POOL))
    try:
        limited = compare(
            {
                "buttress": lambda: limiter.try_acquire("bench"),
                GET: get,
                BLOCKING_GET: lambda: blocking.get(get_key),
                "limits fixed window (Redis)": lambda: fixed.hit(item, "fixed"),
                "limits moving window (Redis)": lambda: moving.hit(item, "moving"),
            },
            rounds=LIMITER_ROUNDS,
        )
    finally:
        blocking.close()
    acquired = compare({"buttress": breaker.acquire, GET: get})
    broken = compare(
        {
            "buttress": lambda: breaker.call(ok),
            GET: get,
            "pybreaker (CircuitRedisStorage)": lambda: py_breaker.call(ok),
        }
    )
    if not (fixed.hit(item, "fixed") and moving.hit(item, "moving")):
        raise RuntimeError("limits rejected a call; the rate is too low for this machine")
    _on_redis(state, limiter)
    if breaker.is_local or breaker.telemetry.counts()["failure"]:
        raise RuntimeError("the breaker did not run on Redis, or recorded failures")
    return [
        row("RateLimiter.try_acquire on RedisState", limited),
        row("CircuitBreaker.acquire on RedisState (closed; one script)", acquired),
        row("CircuitBreaker.call on RedisState (closed; acquire + record)", broken),
    ]


def _async_rows(state: RedisState, namespace: str) -> list[Row]:
    get_key = f"{namespace}:get"
    limiter = RateLimiter(RATE, burst=BURST, name="bench-async", store=state)
    breaker = CircuitBreaker("bench-async", store=state)

    def ready(fn: AsyncFn) -> Callable[[], Awaitable[AsyncFn]]:
        async def setup() -> AsyncFn:
            return fn

        return setup

    async def get() -> object:
        return await state.async_client().get(get_key)

    purgatory_clients: list[redis.asyncio.Redis] = []

    async def purgatory_setup() -> AsyncFn:
        uow = AsyncRedisUnitOfWork(REDIS_URL)
        purgatory_clients.append(cast(AsyncRedisRepository, uow.contexts).redis)
        factory = AsyncCircuitBreakerFactory(uow=uow)
        await factory.initialize()
        return cast(AsyncFn, factory(f"{namespace}-purgatory")(aok))

    async def teardown() -> None:
        await state.async_client().aclose()  # this loop's clients; the next loop gets its own
        while purgatory_clients:
            await purgatory_clients.pop().aclose()

    raw_clients: list[redis.asyncio.Redis] = []

    def raw_get(
        pool: type[redis.asyncio.ConnectionPool], **options: float
    ) -> Callable[[], Awaitable[AsyncFn]]:
        async def setup() -> AsyncFn:  # a client of this loop, closed by raw_teardown
            client = redis.asyncio.Redis.from_pool(pool.from_url(REDIS_URL, **POOL, **options))
            raw_clients.append(client)
            return lambda: client.get(get_key)

        return setup

    async def raw_teardown() -> None:
        await teardown()
        while raw_clients:
            await raw_clients.pop().aclose()

    limited = compare_async(
        {
            "buttress": ready(lambda: limiter.atry_acquire("bench")),
            f"redis.asyncio {GET}": raw_get(redis.asyncio.ConnectionPool),
            f"redis.asyncio {BLOCKING_GET}": raw_get(redis.asyncio.BlockingConnectionPool, timeout=1.0),
        },
        teardown=raw_teardown,
        rounds=LIMITER_ROUNDS,
    )
    broken = compare_async(
        {
            "buttress": ready(lambda: breaker.acall(aok)),
            f"redis.asyncio {GET}": ready(get),
            "purgatory (AsyncRedisUnitOfWork)": purgatory_setup,
        },
        teardown=teardown,
    )
    _on_redis(state, limiter)
    return [
        row("await RateLimiter.atry_acquire on RedisState", limited),
        row("await CircuitBreaker.acall on RedisState (closed)", broken),
    ]


def run() -> Table:
    if not _redis_reachable():
        note = f"Redis at {mask_url_password(REDIS_URL)} was unreachable: nothing was measured."
        print(note, file=sys.stderr)
        return ComparisonTable(title=TITLE, anchors=[], rows=[], notes=[note])
    client = redis.Redis.from_url(REDIS_URL)
    try:
        with _namespace(client) as namespace:
            state = RedisState(REDIS_URL, prefix=namespace)
            try:
                rows = _sync_rows(state, client, namespace) + _async_rows(state, namespace)
            finally:
                state.close()
    finally:
        client.close()
    verdicts = []
    for each in rows:
        floor = next(theirs for name, theirs in each.anchors_ns.items() if name.endswith(GET))
        ratio = each.buttress_ns / floor
        verdict = "met" if ratio <= BUDGET_RATIO else "MISSED"
        verdicts.append(f"{each.operation} {fmt(each.buttress_ns)} = {ratio:.2f}x ({verdict})")
    return ComparisonTable(
        title=TITLE,
        anchors=sorted({name for each in rows for name in each.anchors_ns}),
        rows=rows,
        notes=[
            f"Budget: a buttress Redis-backed call <= {BUDGET_RATIO}x a raw GET round trip. "
            + "; ".join(verdicts)
            + ".",
            (
                f"Redis at {mask_url_password(REDIS_URL)} on loopback, a fresh key namespace, deleted "
                "afterwards. buttress runs each decision as one EVALSHA of a Lua script (time from Redis "
                "`TIME`); the GET is the same pooled redis-py client (`state.client().get(key)`, or the "
                "loop's `redis.asyncio` client) reading one short key, so the ratio is buttress's extra "
                "cost over a bare round trip."
            ),
            (
                f"The limiter rows take the median of {LIMITER_ROUNDS} rounds and GET on both redis-py pool "
                "kinds, sized as buttress's clients (50 "
                "connections, 0.5 s timeouts): a plain `ConnectionPool` (what limits and most code use; "
                "the budget's floor) and a `BlockingConnectionPool` (waits up to 1 s for a free "
                "connection, as buttress's pools do)."
            ),
            (
                f"limiter: buttress `RateLimiter('{RATE}', burst={BURST:,}, store=RedisState(url))` "
                f"`.try_acquire(key)` / `await .atry_acquire(key)`; limits `storage_from_string(url)` "
                f"with `FixedWindowRateLimiter` / `MovingWindowRateLimiter` `.hit('{ANCHOR_RATE}/second', "
                "key)`. No call was refused or fell back to local state (checked; the run fails "
                "otherwise)."
            ),
            (
                "breaker: buttress `CircuitBreaker(name, store=RedisState(url))`: `.acquire()` alone (the "
                "permit is dropped; in CLOSED nothing is leased), and `.call(ok)` / `await .acall(aok)`, "
                "which run two scripts, acquire and record; pybreaker `CircuitBreaker(state_storage="
                "CircuitRedisStorage(STATE_CLOSED, client, namespace))` `.call(ok)` (sync only); "
                "purgatory `AsyncCircuitBreakerFactory(uow=AsyncRedisUnitOfWork(url))` as a decorator, "
                "async only: purgatory 3.0.1's `SyncRedisUnitOfWork` builds a `redis.asyncio` client "
                "and never awaits it, so it cannot run."
            ),
            (
                "Each async cell is one `asyncio.run` per sample (the loop's client is closed after it). "
                "Samples of a row are interleaved over 7 rounds; the median. Shared 2-core machine with "
                "Redis on it: round trips jitter; read the ratios."
            ),
        ],
    )

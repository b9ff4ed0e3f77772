"""Resilience state on Redis: the limiter's one script per decision, the breaker's no-round-trip CLOSED path.

A limiter decision crosses the network to the local Redis (127.0.0.1, db 15 unless
``BUTTRESS_TEST_REDIS_URL`` says otherwise), so its floor is one redis-py round trip. A breaker's CLOSED
success makes none: its floor is the memory breaker; and a trip must reach another process within 5 ms
(measured across two processes). Keys live under a fresh namespace and are deleted afterwards.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import socket
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any, cast
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
from buttress.errors import CircuitOpen
from buttress.resilience._breaker import CircuitBreaker
from buttress.resilience._limiter import RateLimiter
from buttress.resilience._redis_state import RedisState

__all__ = ["run"]

REDIS_URL = os.environ.get("BUTTRESS_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
BUDGET_RATIO = 1.15
BREAKER_RATIO = 1.1
MEMORY = "memory CircuitBreaker.call"
PROPAGATION_ROUNDS = 15
PROPAGATION_BUDGET_NS = 5_000_000
PROPAGATION_IO = "trip in process A refused in process B (B's calls do I/O)"
PROPAGATION_SPIN = "trip in process A refused in process B (B spins on calls)"
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
    memory = CircuitBreaker("bench-memory")
    broken = compare(
        {
            "buttress": lambda: breaker.call(ok),
            MEMORY: lambda: memory.call(ok),
            GET: get,
            "pybreaker (CircuitRedisStorage)": lambda: py_breaker.call(ok),
        }
    )
    if not (fixed.hit(item, "fixed") and moving.hit(item, "moving")):
        raise RuntimeError("limits rejected a call; the rate is too low for this machine")
    _on_redis(state, limiter)
    _breaker_on_redis(breaker)
    return [
        row("RateLimiter.try_acquire on RedisState", limited),
        row("CircuitBreaker.call on RedisState (closed success: no round trip)", broken),
    ]


def _breaker_on_redis(breaker: CircuitBreaker) -> None:
    """The Redis breaker ran on Redis: not local, no failure, and its batched successes reached Redis."""
    if breaker.is_local or breaker.store_kind != "redis" or breaker.telemetry.counts()["failure"]:
        raise RuntimeError("the breaker did not run on Redis, or recorded failures")
    if breaker.snapshot().calls == 0:  # the snapshot writes this process's batch first
        raise RuntimeError("the breaker's successes never reached Redis")


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
    memory = CircuitBreaker("bench-amemory")
    broken = compare_async(
        {
            "buttress": ready(lambda: breaker.acall(aok)),
            f"{MEMORY} (async)": ready(lambda: memory.acall(aok)),
            f"redis.asyncio {GET}": ready(get),
            "purgatory (AsyncRedisUnitOfWork)": purgatory_setup,
        },
        teardown=teardown,
    )
    _on_redis(state, limiter)
    _breaker_on_redis(breaker)
    return [
        row("await RateLimiter.atry_acquire on RedisState", limited),
        row("await CircuitBreaker.acall on RedisState (closed success: no round trip)", broken),
    ]


# -- trip propagation ---------------------------------------------------------------------------------


def _spin() -> int:
    return 1


def prober(prefix: str, mode: str, ready: Any, out: Any, rounds: int) -> None:
    """Process B: call through the shared breaker until refused, once per round; report when it was."""
    state = RedisState(REDIS_URL, prefix=prefix)
    breaker = CircuitBreaker("propagation", consecutive_failures=1, open_duration=300, store=state)
    client = redis.Redis.from_url(REDIS_URL)
    call: Callable[[], object] = client.ping if mode == "io" else _spin
    try:
        breaker.call(call)
        state.breaker_feed().subscriber.subscribed.wait(10)
        for _ in range(rounds):
            while True:  # until the reset reached this process
                try:
                    breaker.call(call)
                    break
                except CircuitOpen:
                    continue
            ready.put("ready")
            while True:
                try:
                    breaker.call(call)
                except CircuitOpen:
                    out.put(time.perf_counter())
                    break
    finally:
        client.close()
        state.close()


def _propagation_ns(namespace: str, mode: str) -> float:
    """Median ns from process A starting the call that trips the breaker to process B's first refusal."""
    context = multiprocessing.get_context("spawn")
    ready, out = context.Queue(), context.Queue()
    prefix = f"{namespace}-{mode}"
    process = context.Process(
        target=prober, args=(prefix, mode, ready, out, PROPAGATION_ROUNDS + 1), daemon=True
    )
    process.start()
    state = RedisState(REDIS_URL, prefix=prefix)
    tripper = CircuitBreaker("propagation", consecutive_failures=1, open_duration=300, store=state)
    delays: list[float] = []
    try:
        for _ in range(PROPAGATION_ROUNDS + 1):
            tripper.reset()
            ready.get(timeout=120)
            started = time.perf_counter()
            with contextlib.suppress(ConnectionError):
                tripper.call(_down)
            delays.append(out.get(timeout=120) - started)
        process.join(timeout=120)
    finally:
        if process.is_alive():
            process.kill()
        state.close()
    return statistics.median(delays[1:]) * 1e9  # the first round warms B up


def _down() -> None:
    raise ConnectionError("upstream down")


def _propagation_rows(get_ns: float) -> list[Row]:
    with _quiet_breakers():
        namespace = f"buttress-bench-{uuid.uuid4().hex[:12]}"
        io = _propagation_ns(namespace, "io")
        spin = _propagation_ns(namespace, "spin")
    return [
        Row(PROPAGATION_IO, io, {GET: get_ns}),
        Row(PROPAGATION_SPIN, spin, {GET: get_ns}),
    ]


@contextmanager
def _quiet_breakers() -> Iterator[None]:
    """The trips are the point here: their warning log lines would only clutter the output."""
    log = logging.getLogger("buttress.resilience._breaker")
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        log.setLevel(level)


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
            rows += _propagation_rows(rows[0].anchors_ns[GET])
    finally:
        client.close()
    verdicts = []
    for each in rows:
        if each.operation.startswith("CircuitBreaker") or each.operation.startswith("await Circuit"):
            floor = next(theirs for name, theirs in each.anchors_ns.items() if name.startswith(MEMORY))
            ratio = each.buttress_ns / floor
            verdict = "met" if ratio <= BREAKER_RATIO else "MISSED"
            verdicts.append(f"{each.operation} = {ratio:.2f}x the memory breaker ({verdict})")
            continue
        if each.operation in (PROPAGATION_IO, PROPAGATION_SPIN):
            verdict = "met" if each.buttress_ns < PROPAGATION_BUDGET_NS else "MISSED"
            verdicts.append(f"{each.operation} {fmt(each.buttress_ns)} ({verdict} < 5 ms)")
            continue
        floor = next(theirs for name, theirs in each.anchors_ns.items() if name.endswith(GET))
        ratio = each.buttress_ns / floor
        verdict = "met" if ratio <= BUDGET_RATIO else "MISSED"
        verdicts.append(f"{each.operation} {fmt(each.buttress_ns)} = {ratio:.2f}x ({verdict})")
    return ComparisonTable(
        title=TITLE,
        anchors=sorted({name for each in rows for name in each.anchors_ns}),
        rows=rows,
        notes=[
            f"Budgets: a limiter decision <= {BUDGET_RATIO}x a raw GET round trip; a Redis-backed "
            f"breaker's CLOSED success <= {BREAKER_RATIO}x the memory breaker's (no round trip); a trip "
            "refused in another process within 5 ms. " + "; ".join(verdicts) + ".",
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
                "breaker: buttress `CircuitBreaker(name, store=RedisState(url))` `.call(ok)` / "
                "`await .acall(aok)` in CLOSED: served by this process's copy of the shared state (pushed "
                "on every transition, re-read every `sync_interval`, 0.25 s), successes counted here and "
                "written in a batch with the next script (the run checks they reached Redis); against "
                f"the `{MEMORY}` (`CircuitBreaker(name)`, same calls), pybreaker `CircuitBreaker("
                "state_storage=CircuitRedisStorage(STATE_CLOSED, client, namespace))` `.call(ok)` (sync "
                "only, a round trip or more per call) and purgatory "
                "`AsyncCircuitBreakerFactory(uow=AsyncRedisUnitOfWork(url))` as a decorator, async only: "
                "purgatory 3.0.1's `SyncRedisUnitOfWork` builds a `redis.asyncio` client and never awaits "
                "it, so it cannot run."
            ),
            (
                "trip propagation: two processes with their own `RedisState` (own connections) share one "
                "breaker; process A starts the call that trips it, process B calls through it in a loop "
                "until it is refused; the time from A's start to B's refusal (`time.perf_counter`, one "
                f"clock for both), median of {PROPAGATION_ROUNDS} rounds after one warm-up. The trip "
                "script PUBLISHes the new state; B's subscriber thread drops its copy; B's next call asks "
                "Redis and is refused. 'calls do I/O': B's protected call is a Redis PING, as an upstream "
                "call would be; 'spins': it returns at once, so B's main thread never releases the GIL and "
                "the subscriber thread waits for CPython's switch interval (5 ms) to run."
            ),
            (
                "Each async cell is one `asyncio.run` per sample (the loop's client is closed after it). "
                "Samples of a row are interleaved over 7 rounds; the median. Shared 2-core machine with "
                "Redis on it: round trips jitter; read the ratios."
            ),
        ],
    )

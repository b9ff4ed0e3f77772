"""Cache: buttress.cache against cachetools, aiocache and cashews, every column measured in the same run.

Timed rows: a memory ``@cached`` hit (sync against cachetools, async against aiocache and cashews), the
memory ``Cache.get`` / ``Cache.set`` for reference, a Redis hit against a raw redis-py GET of the same
bytes (and the async libraries' Redis gets), and a tiered L1 hit. A second table counts how many times
each library runs a function under 1,000 concurrent misses on one key. Redis is db 15 unless
``BUTTRESS_TEST_REDIS_URL`` says otherwise; every key lives under a fresh prefix and is deleted afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar, cast
from urllib.parse import urlsplit

import aiocache
import cachetools
import cashews
import redis
import redis.asyncio
import redis.asyncio.retry
import redis.backoff
import redis.retry

from benchmarks._harness import Row, Table, ameasure_ns, fmt, interleave
from benchmarks.bench_resilience import ComparisonTable, TableGroup, compare, row
from buttress._redaction import mask_url_password
from buttress.cache import Cache, Entry, MemoryBackend, cached, set_cache
from buttress.cache._redis import RedisBackend
from buttress.cache._tiered import TieredBackend
from buttress.events import create_event_bus

__all__ = ["run"]

F = TypeVar("F", bound=Callable[..., Any])
AsyncFn = Callable[[], Awaitable[object]]

REDIS_URL: Final = os.environ.get("BUTTRESS_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
TTL: Final = 3600
ROUNDS: Final = 7
REDIS_ROUNDS: Final = 15
"""Rounds of the Redis rows: round trips jitter more than in-process calls, and the budget is 15%."""
BATCH: Final = 50
"""Awaits per timed iteration of an async sample, so the timing loop's own cost is spread thin."""
MAXSIZE: Final = 10_000
VALUE: Final = {"id": 42, "name": "Nina Simone", "genres": ["jazz", "soul", "blues"], "active": False}
"""The cached value of the get and Redis rows: a small JSON-able record."""
STAMPEDE: Final = 1_000
SLOW: Final = 0.02
"""Seconds the function of the stampede table takes (``time.sleep`` / ``asyncio.sleep``)."""
HANG: Final = 10.0
"""Seconds after which a stampede run counts as hung (cashews #127: stampede locks hang under load)."""

SYNC_HIT_RATIO: Final = 1.0
MODULE_HIT_RATIO: Final = 1.0
"""The module-level ``@cached`` hit against cachetools' default (unlocked) ``cached`` hit."""
SET_RATIO: Final = 1.0
"""Memory ``Cache.set`` against cachetools' ``TTLCache.__setitem__`` (unlocked)."""
ASYNC_HIT_NS: Final = 2_000.0
REDIS_RATIO: Final = 1.15
TIERED_NS: Final = 3_000.0

LOCKED: Final = "cachetools TTLCache + Lock"
UNLOCKED: Final = "cachetools TTLCache, no lock"
AIOCACHE: Final = "aiocache (SimpleMemoryCache)"
CASHEWS: Final = "cashews (mem://)"
RAW: Final = "redis-py GET, same key (ConnectionPool)"
ARAW: Final = "redis.asyncio GET, same key (ConnectionPool)"
RAW_BLOCKING: Final = "redis-py GET, same key (BlockingConnectionPool)"
ARAW_BLOCKING: Final = "redis.asyncio GET, same key (BlockingConnectionPool)"
BARE: Final = "reference: await of the undecorated function"
MODULE: Final = "buttress module-level `@cached`"
FIXED: Final = "reference: buttress `cache.cached`"
UNLOCKED_SET: Final = f"{UNLOCKED} `[k] = v`"
UNREACHABLE: Final = (
    f"Redis at {mask_url_password(REDIS_URL)} was unreachable: the Redis and tiered rows were not measured."
)


# -- what the tables are made of ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Budget:
    """One budget: the limit and whether the row met it, rendered into the row's name and the notes."""

    text: str
    met: bool

    @property
    def verdict(self) -> str:
        return "met" if self.met else "MISSED"


def judged(operation: str, times: dict[str, float], budget: Budget) -> Row:
    """:func:`row`, with the budget and its verdict in the operation's name."""
    return row(f"{operation} (budget {budget.text}: {budget.verdict})", times)


@dataclass(frozen=True)
class Stampede:
    """How often one library ran the function under :data:`STAMPEDE` concurrent misses on one key."""

    library: str
    workers: str
    calls: int
    seconds: float
    problem: str = ""


@dataclass
class StampedeTable(Table):
    """Counts, not timings: a row per library and concurrency model."""

    results: list[Stampede] = field(default_factory=list)

    def to_markdown(self) -> str:
        lines = [
            f"### {self.title}",
            "",
            "| library | concurrent callers | function calls | wall time |",
            "|---|---|---|---|",
        ]
        for each in self.results:
            calls = f"{each.calls:,}" + (f" ({each.problem})" if each.problem else "")
            lines.append(f"| {each.library} | {each.workers} | {calls} | {each.seconds * 1e3:,.0f} ms |")
        lines += ["", *(f"- {note}" for note in self.notes)]
        return "\n".join(lines) + "\n"


def _typed(decorator: Callable[[Callable[..., Any]], Any], fn: F) -> F:
    """An anchor's decorator applied to ``fn``, keeping ``fn``'s type (aiocache is untyped)."""
    return cast(F, decorator(fn))


def _counted_calls() -> tuple[list[int], Callable[[int], int], Callable[[int], Awaitable[int]]]:
    """A call log and a sync and an async function that append to it: cheap, as hits are what is timed."""
    calls: list[int] = []

    def fn(x: int) -> int:
        calls.append(x)
        return x

    async def afn(x: int) -> int:
        calls.append(x)
        return x

    return calls, fn, afn


def _computed_once(name: str, calls: list[int]) -> None:
    """A hit row's function ran for its first (missing) call only, or its figures would include misses."""
    if len(calls) != 1:
        raise RuntimeError(f"{name}: the cached function ran {len(calls)} times; the row timed misses")


# -- timing: sync rows interleave measure_ns loops, async ones awaits in one event loop ---------------------


def _acompare(
    runner: asyncio.Runner, candidates: dict[str, AsyncFn], rounds: int = ROUNDS
) -> dict[str, float]:
    """:func:`compare` for awaits: one event loop kept across samples, :data:`BATCH` awaits per iteration.

    Each sample is one :func:`ameasure_ns` loop of ``batch()``, divided by :data:`BATCH`, so the timing
    loop's per-iteration cost (a call, a coroutine, an await) is spread over many decorated calls.
    """

    def sampler(fn: AsyncFn) -> Callable[[], float]:
        async def batch() -> None:
            for _ in range(BATCH):
                await fn()

        return lambda: runner.run(ameasure_ns(batch, repeat=1)) / BATCH

    return interleave({name: sampler(fn) for name, fn in candidates.items()}, rounds)


# -- memory rows -------------------------------------------------------------------------------------------


def _memory_rows(runner: asyncio.Runner) -> tuple[list[Row], list[Budget]]:
    cache = Cache(MemoryBackend())
    logs: dict[str, list[int]] = {}

    def sync_fn(name: str) -> Callable[[int], int]:
        logs[name], fn, _ = _counted_calls()
        return fn

    def async_fn(name: str) -> Callable[[int], Awaitable[int]]:
        logs[name], _, afn = _counted_calls()
        return afn

    ours = cache.cached(ttl=TTL)(sync_fn("buttress"))
    module = cached(ttl=TTL, namespace="module")(sync_fn(MODULE))  # its own keys: the same fn name
    locked = cachetools.cached(cachetools.TTLCache(maxsize=MAXSIZE, ttl=TTL), lock=threading.Lock())(
        sync_fn(LOCKED)
    )
    unlocked = cachetools.cached(cachetools.TTLCache(maxsize=MAXSIZE, ttl=TTL))(sync_fn(UNLOCKED))
    previous = set_cache(cache)  # the module-level @cached reads the process-wide cache
    try:
        both = compare(
            {
                "buttress": lambda: ours(1),
                MODULE: lambda: module(1),
                LOCKED: lambda: locked(1),
                UNLOCKED: lambda: unlocked(1),
            }
        )
    finally:
        set_cache(previous)
    hit = {name: both[name] for name in ("buttress", LOCKED, UNLOCKED)}
    module_hit = {"buttress": both[MODULE], UNLOCKED: both[UNLOCKED], FIXED: both["buttress"]}

    aours = cache.cached(ttl=TTL)(async_fn("buttress async"))
    aio = _typed(aiocache.cached(ttl=TTL), async_fn(AIOCACHE))
    cashews_cache = cashews.Cache()
    cashews_cache.setup("mem://")
    cashewed = _typed(cashews_cache(ttl=TTL), async_fn(CASHEWS))
    bare = async_fn(BARE)
    ahit = _acompare(
        runner,
        {
            "buttress": lambda: aours(1),
            AIOCACHE: lambda: aio(1),
            CASHEWS: lambda: cashewed(1),
            BARE: lambda: bare(1),
        },
    )
    for name, calls in logs.items():
        if name != BARE:
            _computed_once(name, calls)
    sync_budget = Budget(
        f"<= {SYNC_HIT_RATIO:.2f}x {LOCKED}", hit["buttress"] <= SYNC_HIT_RATIO * hit[LOCKED]
    )
    module_budget = Budget(
        f"<= {MODULE_HIT_RATIO:.2f}x {UNLOCKED}",
        module_hit["buttress"] <= MODULE_HIT_RATIO * module_hit[UNLOCKED],
    )
    async_budget = Budget(f"<= {fmt(ASYNC_HIT_NS)}", ahit["buttress"] <= ASYNC_HIT_NS)
    get_row, stored = _memory_get_set_rows(cache)
    set_budget = Budget(
        f"<= {SET_RATIO:.2f}x {UNLOCKED_SET}", stored["buttress"] <= SET_RATIO * stored[UNLOCKED_SET]
    )
    rows = [
        judged("memory `@cached` hit, sync, one int argument", hit, sync_budget),
        judged("memory module-level `@cached` hit, sync, one int argument", module_hit, module_budget),
        judged("memory `@cached` hit, async, one int argument", ahit, async_budget),
        get_row,
        judged("memory `Cache.set`", stored, set_budget),
    ]
    return rows, [sync_budget, module_budget, async_budget, set_budget]


def _memory_get_set_rows(cache: Cache) -> tuple[Row, dict[str, float]]:
    """The memory Cache's get (a reference row) and set (times, judged by the caller) against a
    TTLCache's, and the backend alone."""
    backend = MemoryBackend()
    lock = threading.Lock()
    ttl_locked = cachetools.TTLCache[str, object](maxsize=MAXSIZE, ttl=TTL)
    ttl_unlocked = cachetools.TTLCache[str, object](maxsize=MAXSIZE, ttl=TTL)
    entry = Entry(VALUE)
    cache.set("k", VALUE)
    backend.set("default:k", entry, TTL)
    ttl_locked["k"] = ttl_unlocked["k"] = VALUE

    def locked_get() -> object:
        with lock:
            return ttl_locked.get("k")

    def locked_set() -> None:
        with lock:
            ttl_locked["k"] = VALUE

    def unlocked_set() -> None:
        ttl_unlocked["k"] = VALUE

    got = compare(
        {
            "buttress": lambda: cache.get("k"),
            f"{LOCKED} `.get`": locked_get,
            f"{UNLOCKED} `.get`": lambda: ttl_unlocked.get("k"),
            "reference: buttress MemoryBackend.get": lambda: backend.get("default:k"),
        }
    )
    stored = compare(
        {
            "buttress": lambda: cache.set("k", VALUE),
            f"{LOCKED} `[k] = v`": locked_set,
            UNLOCKED_SET: unlocked_set,
            "reference: buttress MemoryBackend.set": lambda: backend.set("default:k", entry, TTL),
        }
    )
    if cache.get("k") != VALUE:
        raise RuntimeError("the memory Cache lost its key during the get/set rows")
    return row("memory `Cache.get` hit (reference)", got), stored


# -- Redis rows --------------------------------------------------------------------------------------------


def _redis_client() -> redis.Redis | None:
    """A client for setup and cleanup, or None when Redis does not answer a PING within a second."""
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1, socket_timeout=1)
    try:
        client.ping()
    except (redis.ConnectionError, redis.TimeoutError):
        client.close()
        return None
    return client


@contextlib.contextmanager
def _prefix(client: redis.Redis) -> Iterator[str]:
    """A fresh key prefix; every key under it (ours, aiocache's, cashews') is deleted afterwards."""
    prefix = f"buttress-bench-cache-{uuid.uuid4().hex[:12]}"
    try:
        yield prefix
    finally:
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        if keys:
            client.delete(*keys)


def _pool_options(backend: RedisBackend) -> dict[str, Any]:
    """The backend's own pool settings (size and timeouts), without retries."""
    return {
        "max_connections": backend.max_connections,
        "socket_timeout": backend.socket_timeout,
        "socket_connect_timeout": backend.socket_timeout,
    }


def _raw_clients(backend: RedisBackend) -> tuple[redis.Redis, redis.Redis]:
    """Two redis-py clients sized as ``backend``'s pool: a plain ``ConnectionPool`` (what the anchor
    libraries use; it raises when every connection is busy) and a ``BlockingConnectionPool`` (waits 1 s)."""
    retry = redis.retry.Retry(redis.backoff.NoBackoff(), 0)
    options = _pool_options(backend)
    plain = redis.ConnectionPool.from_url(REDIS_URL, retry=retry, **options)
    blocking = redis.BlockingConnectionPool.from_url(REDIS_URL, retry=retry, timeout=1.0, **options)
    return redis.Redis.from_pool(plain), redis.Redis.from_pool(blocking)


def _araw_clients(backend: RedisBackend) -> tuple[redis.asyncio.Redis, redis.asyncio.Redis]:
    """:func:`_raw_clients` for this event loop."""
    retry = redis.asyncio.retry.Retry(redis.backoff.NoBackoff(), 0)
    options = _pool_options(backend)
    plain = redis.asyncio.ConnectionPool.from_url(REDIS_URL, retry=retry, **options)
    blocking = redis.asyncio.BlockingConnectionPool.from_url(REDIS_URL, retry=retry, timeout=1.0, **options)
    return redis.asyncio.Redis.from_pool(plain), redis.asyncio.Redis.from_pool(blocking)


def _redis_rows(runner: asyncio.Runner, prefix: str) -> tuple[list[Row], list[Budget]]:
    """Ours against a raw GET of the very key it stored (sync, then async with aiocache and cashews)."""
    backend = RedisBackend(REDIS_URL, prefix=f"{prefix}:ours")
    cache = Cache(backend)
    key = backend.redis_key("default:k")
    raw, raw_blocking = _raw_clients(backend)
    stack = contextlib.AsyncExitStack()
    try:
        cache.set("k", VALUE)
        if cache.get("k") != VALUE or raw.get(key) is None or raw_blocking.get(key) is None:
            raise RuntimeError("the sync Redis row would not time hits")
        sync = compare(
            {
                "buttress": lambda: cache.get("k"),
                RAW: lambda: raw.get(key),
                RAW_BLOCKING: lambda: raw_blocking.get(key),
            },
            rounds=REDIS_ROUNDS,
        )
        candidates = runner.run(_async_redis_candidates(stack, cache, backend, prefix))
        asynchronous = _acompare(runner, candidates, REDIS_ROUNDS)
        if not cache.info().available:
            raise RuntimeError("the Redis backend was degraded during the run; the figures would be local")
    finally:
        runner.run(stack.aclose())
        raw.close()
        raw_blocking.close()
        cache.close()
    sync_budget = Budget(
        f"<= {REDIS_RATIO:.2f}x a redis-py GET on either pool",
        sync["buttress"] <= REDIS_RATIO * min(sync[RAW], sync[RAW_BLOCKING]),
    )
    async_budget = Budget(
        f"<= {REDIS_RATIO:.2f}x a redis.asyncio GET on either pool",
        asynchronous["buttress"] <= REDIS_RATIO * min(asynchronous[ARAW], asynchronous[ARAW_BLOCKING]),
    )
    rows = [
        judged("Redis hit, sync: `Cache.get`", sync, sync_budget),
        judged("Redis hit, async: `await Cache.aget`", asynchronous, async_budget),
    ]
    return rows, [sync_budget, async_budget]


async def _async_redis_candidates(
    stack: contextlib.AsyncExitStack, cache: Cache, backend: RedisBackend, prefix: str
) -> dict[str, AsyncFn]:
    """Ours, raw redis.asyncio, aiocache and cashews reading one small value; ``stack`` closes them."""
    stack.push_async_callback(cache.aclose)
    parts = urlsplit(REDIS_URL)
    key = backend.redis_key("default:k")
    raw, raw_blocking = _araw_clients(backend)
    stack.push_async_callback(raw.aclose)
    stack.push_async_callback(raw_blocking.aclose)
    aio = aiocache.RedisCache(
        endpoint=parts.hostname or "127.0.0.1",
        port=parts.port or 6379,
        db=int(parts.path.strip("/") or 0),
        namespace=f"{prefix}:aiocache:",
    )
    stack.push_async_callback(aio.close)
    cashews_cache = cashews.Cache()
    cashews_cache.setup(REDIS_URL)
    stack.push_async_callback(cashews_cache.close)
    cashews_key = f"{prefix}:cashews:k"
    await aio.set("k", VALUE)
    await cashews_cache.set(cashews_key, VALUE)
    for name, value in (
        ("buttress", await cache.aget("k")),
        ("aiocache", await aio.get("k")),
        ("cashews", await cashews_cache.get(cashews_key)),
    ):
        if value != VALUE:
            raise RuntimeError(f"{name} did not read the value back: {value!r}")
    if await raw.get(key) is None or await raw_blocking.get(key) is None:
        raise RuntimeError("redis.asyncio did not find the Cache's key")
    return {
        "buttress": lambda: cache.aget("k"),
        ARAW: lambda: raw.get(key),
        ARAW_BLOCKING: lambda: raw_blocking.get(key),
        "aiocache RedisCache `.get`": lambda: aio.get("k"),
        "cashews (redis://) `.get`": lambda: cashews_cache.get(cashews_key),
    }


def _tiered_row(prefix: str) -> tuple[Row, Budget]:
    """A tiered get served by L1: the value is written through a plain Redis Cache, one get fills L1."""
    ours_prefix = f"{prefix}:tiered"
    bus = create_event_bus("redis", redis_url=REDIS_URL, prefix=f"{prefix}:events")
    writer = Cache(RedisBackend(REDIS_URL, prefix=ours_prefix))
    tiered_backend = TieredBackend(RedisBackend(REDIS_URL, prefix=ours_prefix), bus=bus)
    cache = Cache(tiered_backend)
    memory = Cache(MemoryBackend())
    try:
        writer.set("k", VALUE)
        memory.set("k", VALUE)
        if cache.get("k") != VALUE:  # the one miss: L2 answers and fills L1
            raise RuntimeError("the tiered Cache did not read the value from Redis")
        times = compare(
            {
                "buttress": lambda: cache.get("k"),
                "reference: buttress memory `Cache.get`": lambda: memory.get("k"),
            }
        )
        info = tiered_backend.info()
        if not info.available or not info.entries:
            raise RuntimeError(f"the tiered backend was degraded or held nothing in L1: {info}")
    finally:
        cache.close()
        writer.close()
        memory.close()
        bus.close()
    budget = Budget(f"<= {fmt(TIERED_NS)}", times["buttress"] <= TIERED_NS)
    return judged("tiered L1 hit: `Cache.get` (Redis L2, event-bus invalidation)", times, budget), budget


# -- stampede ----------------------------------------------------------------------------------------------


def _stampede_threads(
    library: str, decorate: Callable[[Callable[[int], int]], Callable[[int], int]]
) -> Stampede:
    """:data:`STAMPEDE` threads, released together by a barrier, each call the decorated slow function."""
    calls: list[int] = []

    def slow(x: int) -> int:
        calls.append(x)
        time.sleep(SLOW)
        return x

    fn = decorate(slow)
    barrier = threading.Barrier(STAMPEDE)
    errors: list[BaseException] = []

    def worker() -> None:
        barrier.wait()
        try:
            value = fn(1)
        except Exception as exc:  # noqa: BLE001 - reported in the table, not raised in a thread
            errors.append(exc)
        else:
            if value != 1:
                errors.append(RuntimeError(f"returned {value!r}"))

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(STAMPEDE)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(HANG)
    seconds = time.perf_counter() - start
    problem = _problem(errors, hung=any(thread.is_alive() for thread in threads))
    return Stampede(library, f"{STAMPEDE:,} threads", len(calls), seconds, problem)


def _stampede_tasks(
    runner: asyncio.Runner,
    library: str,
    decorate: Callable[[Callable[[int], Awaitable[int]]], Callable[[int], Awaitable[int]]],
) -> Stampede:
    """:data:`STAMPEDE` asyncio tasks, started together, await the decorated slow function once each."""
    calls: list[int] = []

    async def slow(x: int) -> int:
        calls.append(x)
        await asyncio.sleep(SLOW)
        return x

    fn = decorate(slow)

    async def main() -> tuple[float, list[BaseException], bool]:
        tasks = [asyncio.ensure_future(fn(1)) for _ in range(STAMPEDE)]
        start = time.perf_counter()
        done, pending = await asyncio.wait(tasks, timeout=HANG)
        seconds = time.perf_counter() - start
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        errors = [exc for task in done if (exc := task.exception()) is not None]
        errors += [
            RuntimeError("wrong value") for task in done if not task.exception() and task.result() != 1
        ]
        return seconds, errors, bool(pending)

    seconds, errors, hung = runner.run(main())
    return Stampede(library, f"{STAMPEDE:,} tasks", len(calls), seconds, _problem(errors, hung=hung))


def _problem(errors: list[BaseException], *, hung: bool) -> str:
    parts = [f"hung: callers still waiting after {HANG:.0f} s"] if hung else []
    if errors:
        parts.append(f"{len(errors)} callers raised, e.g. {type(errors[0]).__name__}: {errors[0]}")
    return "; ".join(parts)


def _stampedes(runner: asyncio.Runner) -> list[Stampede]:
    def cachetools_locked(fn: Callable[[int], int]) -> Callable[[int], int]:
        return cachetools.cached(cachetools.TTLCache(maxsize=MAXSIZE, ttl=TTL), lock=threading.Lock())(fn)

    def cachetools_condition(fn: Callable[[int], int]) -> Callable[[int], int]:
        cache = cachetools.TTLCache[Any, int](maxsize=MAXSIZE, ttl=TTL)
        return cachetools.cached(cache, condition=threading.Condition())(fn)

    def cashews_cache() -> cashews.Cache:
        cache = cashews.Cache()
        cache.setup("mem://")
        return cache

    def cashews_locked(fn: Callable[[int], Awaitable[int]]) -> Callable[[int], Awaitable[int]]:
        cache = cashews_cache()
        return _typed(cache(ttl=TTL), _typed(cache.locked(ttl=HANG), fn))

    return [
        _stampede_threads("buttress `@cache.cached`", Cache(MemoryBackend()).cached(ttl=TTL)),
        _stampede_threads("cachetools `@cached(lock=Lock())`", cachetools_locked),
        _stampede_threads("cachetools `@cached(condition=Condition())`", cachetools_condition),
        _stampede_tasks(runner, "buttress `@cache.cached`", Cache(MemoryBackend()).cached(ttl=TTL)),
        _stampede_tasks(runner, "aiocache `@cached`", lambda fn: _typed(aiocache.cached(ttl=TTL), fn)),
        _stampede_tasks(
            runner, "aiocache `@cached_stampede`", lambda fn: _typed(aiocache.cached_stampede(ttl=TTL), fn)
        ),
        _stampede_tasks(runner, "cashews `@cache(ttl)`", lambda fn: _typed(cashews_cache()(ttl=TTL), fn)),
        _stampede_tasks(
            runner,
            "cashews `@cache(ttl, lock=True)`",
            lambda fn: _typed(cashews_cache()(ttl=TTL, lock=True), fn),
        ),
        _stampede_tasks(runner, "cashews `@cache(ttl)` over `@cache.locked`", cashews_locked),
    ]


# -- the module --------------------------------------------------------------------------------------------


def run() -> Table:
    with asyncio.Runner() as runner:
        rows, budgets = _memory_rows(runner)
        client = _redis_client()
        if client is not None:
            try:
                with _prefix(client) as prefix:
                    redis_rows, redis_budgets = _redis_rows(runner, prefix)
                    tiered, tiered_budget = _tiered_row(prefix)
            finally:
                client.close()
            rows += [*redis_rows, tiered]
            budgets += [*redis_budgets, tiered_budget]
        else:
            print(UNREACHABLE, file=sys.stderr)
        stampedes = _stampedes(runner)
    timed = ComparisonTable(
        title="Cache: hits and writes per call",
        anchors=sorted({name for each in rows for name in each.anchors_ns}),
        rows=rows,
        notes=_notes(rows, budgets),
    )
    counted = StampedeTable(
        title=f"Cache: stampede, {STAMPEDE:,} concurrent misses on one key",
        anchors=[],
        rows=[],
        results=stampedes,
        notes=[
            (
                f"The function sleeps {SLOW * 1e3:.0f} ms (`time.sleep` in threads, `asyncio.sleep` in "
                f"tasks) and logs each call; every caller passes the same argument. Threads are released "
                f"together by a `threading.Barrier({STAMPEDE})`; tasks are all created before the first "
                "runs. Wall time runs from the first thread's start (or the tasks' creation) to the last "
                f"caller's return; a run still waiting after {HANG:.0f} s counts as hung."
            ),
            (
                "Memory backends throughout: buttress `Cache(MemoryBackend()).cached(ttl=...)`; cachetools "
                "`@cached(TTLCache(...), lock=Lock())` and with `condition=Condition()`; aiocache "
                "`@cached(ttl=...)` and `@cached_stampede(ttl=...)` (lease 2 s) on SimpleMemoryCache; "
                "cashews `Cache().setup('mem://')` as `@cache(ttl=...)`, with `lock=True`, and stacked "
                f"over `@cache.locked(ttl={HANG:.0f})`."
            ),
            (
                "cashews's plain `@cache(ttl)` runs once because its `protected=True` default shares one "
                "task among the concurrent calls of a key in this process. cachetools with only a lock "
                "runs the function once per thread that misses before the first one stores: how many do "
                "depends on how fast 1,000 threads get past the barrier, so that count moves between runs "
                "(tens to hundreds)."
            ),
        ],
    )
    return TableGroup(title=timed.title, anchors=[], rows=[], parts=[timed, counted])


def _notes(rows: list[Row], budgets: list[Budget]) -> list[str]:
    verdicts = "; ".join(
        f"{each.operation.split(' (budget')[0]} {fmt(each.buttress_ns)}: {budget.text}, {budget.verdict}"
        for each, budget in zip([r for r in rows if "(budget" in r.operation], budgets, strict=True)
    )
    return [
        f"Budgets: {verdicts}.",
        *(
            f"The async `@cached` hit cost {fmt(each.buttress_ns - each.anchors_ns[BARE])} above a bare "
            f"await of the function ({fmt(each.anchors_ns[BARE])} in this run): an absolute budget moves "
            "with the machine's speed, which on this shared machine moves between runs."
            for each in rows
            if BARE in each.anchors_ns
        ),
        *([] if any(r.operation.startswith("Redis") for r in rows) else [UNREACHABLE]),
        (
            "Sync `@cached` hit: buttress `@Cache(MemoryBackend()).cached(ttl=3600)` on `def f(x: int)`, "
            f"called as `f(1)`; cachetools 8 `@cached(TTLCache(maxsize={MAXSIZE:,}, ttl=3600), "
            "lock=threading.Lock())` (buttress's memory cache is thread-safe, so the budget compares with "
            "the locked form) and the same without a lock. The function ran once per candidate, for the "
            "first call (checked)."
        ),
        (
            "Module-level `@cached` hit: `buttress.cache.cached(ttl=3600, namespace='module')` with that "
            "same Cache made the process-wide one (`set_cache`), in the same rounds as the `cache.cached` "
            "row; its budget is cachetools' default `@cached` (no lock), as the issue set it. It keeps what "
            "`get_cache()` answered and asks again only after a container change, so a hit costs what a "
            "`cache.cached` hit costs plus one integer comparison."
        ),
        (
            "Async `@cached` hit: the same on `async def f(x: int)`; aiocache 0.12 `@cached(ttl=3600)` "
            "(SimpleMemoryCache, its default) and cashews 7 `Cache().setup('mem://')` used as "
            f"`@cache(ttl=3600)`. Each timed iteration awaits the call {BATCH} times in a row (the figure "
            "is per await), in one event loop kept across samples (`asyncio.Runner`)."
        ),
        (
            "Memory get/set: buttress `Cache.get('k')` (a reference row) / `Cache.set('k', value)` "
            "(namespace 'default', TTL 3600 s) against a `TTLCache`'s `.get` / `[k] = v`, with and "
            "without a `threading.Lock` with-block, and buttress's `MemoryBackend.get` / `.set` alone "
            f"(what the Cache adds is the difference). The value is a small record: `{VALUE}`. The set "
            "budget is the unlocked `TTLCache.__setitem__`; buttress's memory set keeps its lock (writes "
            "stay thread-safe), builds the `Entry` it stores (the value, its freshness time, its tags) and "
            "counts the set for the statistics."
        ),
        (
            f"Redis at {mask_url_password(REDIS_URL)} on loopback, keys under a fresh prefix deleted "
            "afterwards. buttress "
            "`Cache(RedisBackend(url, prefix=...)).get('k')` (one GET, the decode, freshness and stats); "
            "the anchors GET the very key buttress stored (`backend.redis_key(...)`, the same bytes) with "
            "redis-py clients of the backend's pool size and socket timeouts, no retry, on both pool "
            "kinds: a plain `ConnectionPool` (what aiocache, cashews and most code use; it raises when "
            "every connection is busy) and a `BlockingConnectionPool` (waits up to 1 s for one, as "
            "buttress's pools do). The budget holds against the faster of the two. buttress's sync pool "
            "is redis-py's plain pool made to wait up to 1 s for a release instead of raising; its async "
            "pool is a subclass of the blocking one that takes a free connection the plain pool's way "
            "(redis.asyncio's blocking pool arms a Condition and an `asyncio.timeout` "
            "per command). Async: `await Cache.aget('k')` against `redis.asyncio` GETs of that key, "
            "aiocache `RedisCache.get` (JSON) and cashews `setup('redis://...')` `.get` (pickle) of the "
            "same record under their own keys."
        ),
        (
            "Tiered: `Cache(TieredBackend(RedisBackend(url), bus=create_event_bus('redis', ...)))`; the "
            "value is written through a plain Redis Cache on the same prefix, so the first tiered get "
            "misses L1, reads Redis and fills L1; the row times the L1 hits after it (default L1 TTL: "
            "once expired, one get of a sample goes to Redis again)."
        ),
        (
            f"Method: each cell is the median of {ROUNDS} rounds ({REDIS_ROUNDS} for the Redis rows); in a "
            "round every candidate of the row runs one loop calibrated to ~50 ms (GC paused; `measure_ns`, "
            "or `ameasure_ns` of the batched awaits), in rotating order. Shared 2-core machine with Redis "
            "on it: absolute times move between runs; read the ratios."
        ),
    ]

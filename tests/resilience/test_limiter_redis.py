"""RateLimiter on Redis: shared limits, key layout and TTLs, Redis TIME, and the outage policies.

What the Redis store shares with the memory store is in tests/conformance/test_limiter_conformance.py.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import pytest
import redis

from buttress.clock import FakeClock
from buttress.errors import RateLimited
from buttress.events import EventBus
from buttress.observe.metrics import MetricsRegistry
from buttress.resilience._limiter import RateLimiter
from buttress.resilience._limiter_redis import ACQUIRE
from buttress.resilience._redis_state import RedisState, StorePolicy

DOWN_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1: connections are refused at once


@pytest.fixture
def namespace() -> str:
    return f"test-limiter-{uuid.uuid4().hex}"


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    connection = redis.Redis.from_url(redis_url)
    yield connection
    connection.close()


def state(url: str, namespace: str, **options: object) -> RedisState:
    return RedisState(url, prefix=namespace, metrics=MetricsRegistry(), events=EventBus(), **options)  # type: ignore[arg-type]


def limiter(store: RedisState, rate: str = "10/s", **options: object) -> RateLimiter:
    options.setdefault("name", "default")  # a shared limiter needs a name
    return RateLimiter(rate, store=store, metrics=MetricsRegistry(), events=EventBus(), **options)  # type: ignore[arg-type]


def test_processes_share_one_limit_by_redis_time(redis_url: str, namespace: str) -> None:
    first, second = state(redis_url, namespace), state(redis_url, namespace)  # two pools, as two processes
    try:
        a = limiter(first, "1/minute", burst=5, name="shared")
        b = limiter(second, "1/minute", burst=5, name="shared")
        other = limiter(second, "1/minute", burst=5, name="other")
        assert first.now_arg() == ""  # the script reads Redis TIME
        assert [a.try_acquire() for _ in range(3)] == [True] * 3
        assert [b.try_acquire() for _ in range(3)] == [True, True, False]
        assert not a.try_acquire()
        assert b.snapshot().available == pytest.approx(0, abs=0.01)
        assert other.try_acquire()  # another limiter name is another bucket
        assert not a.is_local
        assert repr(a) == "RateLimiter('1/60s', burst=5, name='shared', store='redis')"
    finally:
        first.close()
        second.close()


def test_real_clock_wait_on_redis(redis_url: str, namespace: str) -> None:
    store = state(redis_url, namespace)
    try:
        # 20/s: the second call waits up to 50 ms, so a slow machine (CI under coverage) between the two
        # calls still finds no token; at 1000/s a pause of 1 ms refilled it and nothing was waited.
        fast = limiter(store, "20/s", burst=1, name="fast")
        assert fast.acquire() == 0.0
        waited = fast.acquire(timeout=1.0)
        assert 0 < waited <= 0.05 + 1e-6
        slow = limiter(store, "1/minute", name="slow")
        slow.acquire(timeout=0)
        with pytest.raises(RateLimited) as info:
            slow.acquire(timeout=0)
        assert 59 < info.value.retry_after <= 60
    finally:
        store.close()


def test_bucket_key_and_ttl(redis_url: str, namespace: str, client: redis.Redis) -> None:
    clock = FakeClock()
    store = state(redis_url, namespace, clock=clock)
    try:
        bucket = limiter(store, "1/s", burst=3, name="api", clock=clock)
        bucket.try_acquire("user-7", cost=2)
        key = f"{namespace}:limiter:api:user-7"
        assert float(client.get(key)) == pytest.approx((clock.time() + 2) * 1e6)  # TAT in µs
        assert 2000 < client.pttl(key) <= 3000  # full again in 2 s, plus a second's margin
        bucket.reset("user-7")
        assert client.exists(key) == 0
    finally:
        store.close()


async def test_refund_rewrites_the_ttl(redis_url: str, namespace: str, client: redis.Redis) -> None:
    clock = FakeClock(auto_advance=False)
    store = state(redis_url, namespace, clock=clock)
    try:
        bucket = limiter(store, "1/s", burst=1, name="api", clock=clock)
        await bucket.aacquire("k")
        waiter = asyncio.create_task(bucket.aacquire("k"))
        while clock.sleepers < 1:
            await asyncio.sleep(0)
        assert 2000 < client.pttl(f"{namespace}:limiter:api:k") <= 3000
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        assert 1000 < client.pttl(f"{namespace}:limiter:api:k") <= 2000
    finally:
        await store.aclose()


def test_keys_lists_what_this_process_used_bounded(redis_url: str, namespace: str) -> None:
    clock = FakeClock()
    store = state(redis_url, namespace, clock=clock)
    try:
        bucket = limiter(store, max_keys=3, clock=clock)
        for key in ("a", "b", "c", "d", "e"):
            bucket.try_acquire(key)
        bucket.snapshot("z")  # looking is not using
        assert bucket.keys() == ["c", "d", "e"]
        assert bucket.snapshot("a").available == 0  # forgotten here, still limited in Redis
    finally:
        store.close()


# -- Redis unreachable -----------------------------------------------------------------------------


def down(policy: StorePolicy, clock: FakeClock) -> RedisState:
    return state(DOWN_URL, "test-limiter-down", policy=policy, clock=clock)


def test_policy_local_decides_in_memory() -> None:
    clock = FakeClock()
    store = down("local", clock)
    bucket = limiter(store, "10/s", burst=2, clock=clock, name="loc")
    assert bucket.try_acquire("k")
    assert bucket.is_local
    assert bucket.try_acquire("k")
    assert not bucket.try_acquire("k")
    assert bucket.acquire("k") == pytest.approx(0.1)
    assert clock.sleeps == pytest.approx([0.1])
    assert bucket.snapshot("k").available == 0
    assert bucket.snapshot("other").available == 2
    bucket.reset("k")
    assert bucket.snapshot("k").available == 2
    assert bucket.keys() == ["k"]
    assert store.policy_calls.value >= 5
    store.close()


async def test_policy_local_async_and_refund() -> None:
    clock = FakeClock(auto_advance=False)
    store = down("local", clock)
    bucket = limiter(store, "10/s", burst=1, clock=clock)
    assert await bucket.atry_acquire()
    assert not await bucket.atry_acquire()
    waiter = asyncio.create_task(bucket.aacquire())
    while clock.sleepers < 1:
        await asyncio.sleep(0)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert (await bucket.asnapshot()).available == 0
    clock.advance(0.1)
    assert await bucket.atry_acquire()  # the cancelled reservation went back to the fallback
    await bucket.areset()
    assert (await bucket.asnapshot()).available == 1
    await store.aclose()


def test_sync_refund_during_outage_goes_to_the_fallback() -> None:
    class Interrupted(Exception):
        pass

    class InterruptedClock(FakeClock):
        def sleep(self, seconds: float) -> None:
            raise Interrupted

    clock = InterruptedClock()
    store = down("local", clock)
    bucket = limiter(store, "10/s", burst=1, clock=clock)
    bucket.acquire()
    with pytest.raises(Interrupted):
        bucket.acquire()
    clock.advance(0.1)
    assert bucket.try_acquire()
    store.close()


async def test_policy_open_admits_everything() -> None:
    clock = FakeClock()
    store = down("open", clock)
    bucket = limiter(store, "1/minute", clock=clock)
    assert all(bucket.try_acquire() for _ in range(10))
    assert bucket.acquire() == 0.0
    assert await bucket.aacquire() == 0.0
    assert await bucket.atry_acquire()
    assert bucket.snapshot().available == 1  # no state to show: reported full
    assert not bucket.is_local
    assert clock.sleeps == []
    assert bucket.telemetry.counts() == {"admitted": 13, "rejected": 0, "waited": 0}
    await store.aclose()


async def test_policy_closed_rejects_everything_for_one_interval() -> None:
    clock = FakeClock()
    store = down("closed", clock)
    bucket = limiter(store, "2/s", burst=3, clock=clock, name="shut")
    assert not bucket.try_acquire()
    with pytest.raises(
        RateLimited, match=r"rate limiter 'shut' has no 1 token .* retry after 0\.500 s"
    ) as info:
        bucket.acquire()
    assert info.value.retry_after == 0.5
    assert not await bucket.atry_acquire()
    with pytest.raises(RateLimited):
        await bucket.aacquire()
    assert (await bucket.asnapshot()).available == 3
    assert clock.sleeps == []
    await store.aclose()


def test_a_decision_answers_with_the_smallest_reply(
    redis_url: str, namespace: str, client: redis.Redis
) -> None:
    """An admission without a wait (the common case) is one integer, which redis-py parses fastest; a wait
    or a refusal is one string. None of them is an array."""
    key = f"{namespace}:bucket"
    interval_us, burst = "100000", "2"  # 10/s, burst 2
    now = "1000000000000000"
    admitted = client.evalsha(client.script_load(ACQUIRE.source), 1, key, now, interval_us, burst, 1, "0")
    assert admitted == 1_000_000_000_100_000  # the bucket's new TAT, in whole microseconds
    assert client.evalsha(ACQUIRE.sha, 1, key, now, interval_us, burst, 1, "0") == 1_000_000_000_200_000
    assert client.evalsha(ACQUIRE.sha, 1, key, now, interval_us, burst, 1, "0") == b"-100000"  # retry after
    waited = client.evalsha(ACQUIRE.sha, 1, key, now, interval_us, burst, 1, "200000")
    assert waited == b"100000 1000000000300000"  # the wait and the reservation's TAT

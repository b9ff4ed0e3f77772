"""The clients' pools: bounded and blocking like redis-py's BlockingConnectionPool, but a command that finds a
free connection costs no more than on redis-py's plain pool (no Condition, no extra timer)."""

from __future__ import annotations

import asyncio
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import redis
import redis.asyncio

from buttress._redis import UNAVAILABLE, RedisConnection, execute
from buttress.clock import FakeClock


class TimerLoop(asyncio.SelectorEventLoop):
    """A real event loop that counts the timers armed on it (every ``asyncio.timeout`` arms one)."""

    def __init__(self) -> None:
        super().__init__()
        self.timers = 0

    def call_at(self, when: float, callback: Any, *args: Any, context: Any = None) -> asyncio.TimerHandle:
        self.timers += 1
        return super().call_at(when, callback, *args, context=context)


def connect(url: str, max_connections: int = 50) -> RedisConnection:
    """A connection whose replies may take 3 s: BLPOP holds a connection that long without a timeout."""
    return RedisConnection(
        url, prefix=f"t{uuid.uuid4().hex}", clock=FakeClock(), max_connections=max_connections, timeout=3.0
    )


async def timers_per_get(loop: TimerLoop, client: Any, key: str) -> float:
    await client.get(key)  # connects
    before = loop.timers
    for _ in range(20):
        await client.get(key)
    return (loop.timers - before) / 20


@pytest.mark.redis
def test_a_free_connection_is_taken_as_cheaply_as_from_a_plain_pool(redis_url: str) -> None:
    connection = connect(redis_url)
    loop = TimerLoop()

    async def measure() -> tuple[float, float]:
        plain = redis.asyncio.Redis.from_pool(
            redis.asyncio.ConnectionPool.from_url(redis_url, socket_timeout=0.5)
        )
        try:
            ours = await timers_per_get(loop, connection.async_client(), "k")
            theirs = await timers_per_get(loop, plain, "k")
        finally:
            await plain.aclose()
            await connection.aclose()
        return ours, theirs

    try:
        ours, theirs = loop.run_until_complete(measure())
    finally:
        loop.close()
    assert ours == theirs  # the blocking pool's wait arms one more timer per command


@pytest.mark.redis
async def test_the_pool_stays_bounded_and_a_waiter_gets_the_next_free_connection(redis_url: str) -> None:
    connection = connect(redis_url, max_connections=2)
    key = connection.key("list")
    try:
        # two BLPOPs hold both connections until the pushes below; the third command must wait for one
        held = [asyncio.create_task(connection.acall(execute, "BLPOP", key, "0.5")) for _ in range(2)]
        await asyncio.sleep(0.05)
        waiting = asyncio.create_task(connection.acall(execute, "PING"))
        await asyncio.sleep(0.05)
        assert not waiting.done()
        pool = connection.async_client().connection_pool
        assert len(pool._in_use_connections) == 2  # the bound itself is what is tested
        pusher = redis.asyncio.Redis.from_url(redis_url)
        try:
            await pusher.rpush(key, "a")
            assert await asyncio.wait_for(waiting, 1.0) is True
        finally:
            await pusher.aclose()
        await asyncio.gather(*held)
        assert connection.available
    finally:
        await connection.aclose()


@pytest.mark.redis
async def test_no_free_connection_within_the_pool_wait_is_an_outage(redis_url: str) -> None:
    connection = connect(redis_url, max_connections=1)
    key = connection.key("list")
    try:
        held = asyncio.create_task(connection.acall(execute, "BLPOP", key, "1.5"))
        await asyncio.sleep(0.05)
        assert await connection.acall(execute, "PING") is UNAVAILABLE  # waited POOL_WAIT (1 s), then gave up
        assert "No connection available" in connection.last_error
        await held
    finally:
        await connection.aclose()


@pytest.mark.redis
async def test_many_tasks_share_a_small_pool_without_errors(redis_url: str) -> None:
    connection = connect(redis_url, max_connections=3)
    try:
        replies = await asyncio.gather(*(connection.acall(execute, "PING") for _ in range(200)))
        assert replies == [True] * 200
        pool = connection.async_client().connection_pool
        assert len(pool._available_connections) + len(pool._in_use_connections) <= 3
        assert connection.available
    finally:
        await connection.aclose()


# -- the sync pool: redis-py's plain pool, bounded, waiting up to POOL_WAIT for a free connection ---------


@pytest.mark.redis
def test_the_sync_pool_stays_bounded_and_a_waiting_thread_gets_a_free_connection(redis_url: str) -> None:
    connection = connect(redis_url, max_connections=2)
    key = connection.key("list")
    with ThreadPoolExecutor(4) as threads:
        try:
            held = [threads.submit(connection.call, execute, "BLPOP", key, "0.5") for _ in range(2)]
            time.sleep(0.05)  # let both BLPOPs take a connection
            waiting = threads.submit(connection.call, execute, "PING")
            time.sleep(0.05)
            assert not waiting.done()
            pool = connection.client().connection_pool
            assert len(pool._in_use_connections) == 2  # the bound itself is what is tested
            pusher = redis.Redis.from_url(redis_url)
            try:
                pusher.rpush(key, "a")
            finally:
                pusher.close()
            assert waiting.result(timeout=1.0) is True
            assert [each.result(timeout=2.0) for each in held].count(
                None
            ) == 1  # one popped "a", one timed out
            assert connection.available
        finally:
            connection.close()


@pytest.mark.redis
def test_no_free_sync_connection_within_the_pool_wait_is_an_outage(redis_url: str) -> None:
    connection = connect(redis_url, max_connections=1)
    key = connection.key("list")
    with ThreadPoolExecutor(1) as threads:
        try:
            held = threads.submit(connection.call, execute, "BLPOP", key, "1.5")
            time.sleep(0.05)
            assert connection.call(execute, "PING") is UNAVAILABLE  # waited POOL_WAIT (1 s), then gave up
            assert "No connection available" in connection.last_error
            held.result(timeout=3.0)
        finally:
            connection.close()


@pytest.mark.redis
def test_many_threads_share_a_small_sync_pool_without_errors(redis_url: str) -> None:
    connection = connect(redis_url, max_connections=3)
    try:
        with ThreadPoolExecutor(12) as threads:
            replies = list(threads.map(lambda _: connection.call(execute, "PING"), range(300)))
        assert replies == [True] * 300
        pool = connection.client().connection_pool
        assert pool._created_connections <= 3
        assert connection.available
    finally:
        connection.close()

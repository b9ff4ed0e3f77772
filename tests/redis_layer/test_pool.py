"""The clients' pools: bounded and blocking like redis-py's BlockingConnectionPool, but a command that finds a
free connection costs no more than on redis-py's plain pool (no Condition, no extra timer)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
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


async def ahold(connection: RedisConnection, count: int, seconds: str) -> list[asyncio.Task[Any]]:
    """``count`` BLPOPs of up to ``seconds`` that hold as many connections, once they all hold one."""
    pool = connection.async_client().connection_pool
    key = connection.key("list")
    held = [asyncio.create_task(connection.acall(execute, "BLPOP", key, seconds)) for _ in range(count)]
    await asyncio.wait_for(settled(lambda: len(pool._in_use_connections) == count), 2.0)
    return held


async def settled(done: Callable[[], bool]) -> None:
    """Let the other tasks run until ``done()``; the tests never wait for time to pass."""
    while not done():
        await asyncio.sleep(0)


@pytest.mark.redis
async def test_the_pool_stays_bounded_and_a_waiter_gets_the_next_free_connection(redis_url: str) -> None:
    connection = connect(redis_url, max_connections=2)
    try:
        held = await ahold(connection, 2, "0.5")
        pool = connection.async_client().connection_pool
        waiting = asyncio.create_task(connection.acall(execute, "PING"))
        await asyncio.wait_for(settled(lambda: pool._waiters == 1), 2.0)  # the bound itself is tested
        assert len(pool._in_use_connections) == 2
        pusher = redis.asyncio.Redis.from_url(redis_url)
        try:
            await pusher.rpush(connection.key("list"), "a")  # one BLPOP returns: its connection is free
            assert await asyncio.wait_for(waiting, 1.0) is True
        finally:
            await pusher.aclose()
        assert [await each for each in held].count(None) == 1  # the other BLPOP timed out
        assert connection.available
    finally:
        await connection.aclose()


@pytest.mark.redis
async def test_no_free_connection_within_the_pool_wait_is_an_outage(redis_url: str) -> None:
    connection = connect(redis_url, max_connections=1)
    try:
        held = await ahold(connection, 1, "1.5")
        assert await connection.acall(execute, "PING") is UNAVAILABLE  # waited POOL_WAIT (1 s), then gave up
        assert "No connection available" in connection.last_error
        await asyncio.gather(*held)
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


def until(done: Callable[[], bool], what: str) -> None:
    """Wait (up to 2 s) for other threads to reach a state; the tests never wait for time to pass."""
    deadline = time.monotonic() + 2.0
    while not done():
        assert time.monotonic() < deadline, f"never {what}"
        time.sleep(0.001)


def hold(connection: RedisConnection, threads: ThreadPoolExecutor, count: int, seconds: str) -> list[Any]:
    """``count`` BLPOPs of up to ``seconds`` that hold as many connections, once they all hold one."""
    pool = connection.client().connection_pool
    key = connection.key("list")
    held = [threads.submit(connection.call, execute, "BLPOP", key, seconds) for _ in range(count)]
    until(lambda: len(pool._in_use_connections) == count, "took the connections")
    return held


@pytest.mark.redis
def test_the_sync_pool_stays_bounded_and_a_waiting_thread_gets_a_free_connection(redis_url: str) -> None:
    connection = connect(redis_url, max_connections=2)
    pool = connection.client().connection_pool
    try:
        with ThreadPoolExecutor(4) as threads:
            held = hold(connection, threads, 2, "0.5")
            waiting = threads.submit(connection.call, execute, "PING")
            until(lambda: pool._waiters == 1, "waited")  # the bound itself is what is tested
            assert len(pool._in_use_connections) == 2
            pusher = redis.Redis.from_url(redis_url)
            try:
                pusher.rpush(connection.key("list"), "a")  # one BLPOP returns: its connection is free
            finally:
                pusher.close()
            assert waiting.result(timeout=1.0) is True
            assert [each.result(timeout=2.0) for each in held].count(None) == 1  # the other BLPOP timed out
        assert connection.available
    finally:
        connection.close()


@pytest.mark.redis
def test_no_free_sync_connection_within_the_pool_wait_is_an_outage(redis_url: str) -> None:
    connection = connect(redis_url, max_connections=1)
    try:
        with ThreadPoolExecutor(1) as threads:
            hold(connection, threads, 1, "1.5")
            assert connection.call(execute, "PING") is UNAVAILABLE  # waited POOL_WAIT (1 s), then gave up
            assert "No connection available" in connection.last_error
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

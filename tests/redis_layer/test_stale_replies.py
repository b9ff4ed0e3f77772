"""A command cancelled after it was sent must not leave its reply for the next command on that socket."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import redis

from buttress._redis import RedisConnection, execute


def _blocked_clients(redis_url: str) -> int:
    probe = redis.Redis.from_url(redis_url)
    try:
        return int(probe.info("clients")["blocked_clients"])
    finally:
        probe.close()


@pytest.mark.parametrize("pipelined", [False, True])
async def test_a_command_cancelled_before_its_reply_never_answers_the_next_one(
    redis_url: str, pipelined: bool
) -> None:
    """A caller cancelled while its command waits in Redis leaves that reply on the socket; the pool
    must not hand the socket to the next command, which would read the stale reply as its own (the
    realtime hub's resumes are cancelled this way whenever a client leaves mid-replay)."""
    connection = RedisConnection(redis_url, prefix="buttress-test-stale", max_connections=1)
    key, other = connection.key("list"), connection.key("value")
    plain = redis.Redis.from_url(redis_url)
    plain.delete(key)
    plain.set(other, "mine")

    def blpop(client: Any) -> Any:
        if pipelined:
            pipe = client.pipeline(transaction=False)
            pipe.execute_command("BLPOP", key, 5)
            return pipe.execute()
        return client.execute_command("BLPOP", key, 5)

    try:
        waiter = asyncio.ensure_future(connection.acall(blpop))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 5
        while await asyncio.to_thread(_blocked_clients, redis_url) == 0:
            assert loop.time() < deadline, "the BLPOP never blocked"
            await asyncio.sleep(0.01)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        plain.rpush(key, "stale")  # the cancelled command's reply now waits on its socket, if it is open
        assert await connection.acall(execute, "GET", other) == b"mine"
    finally:
        plain.delete(key, other)
        plain.close()
        await connection.aclose()

"""RedisConnection: per-loop async clients, plans, and the outage rule against a real redis-server."""

from __future__ import annotations

import asyncio
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest

from buttress._redis import UNAVAILABLE, Plan, RedisConnection, Script, execute, pipeline
from buttress.clock import FakeClock
from tests._ports import free_port
from tests._redis_server import RedisServer

_ECHO_NOW = Script("--@include now\nreturn fmt(now)\n")


class Reports:
    """What the connection told its owner."""

    def __init__(self) -> None:
        self.down: list[str] = []
        self.up: list[float] = []


def connect(url: str, clock: FakeClock | None = None, reports: Reports | None = None) -> RedisConnection:
    reports = reports or Reports()
    return RedisConnection(
        url,
        prefix=f"t{uuid.uuid4().hex}",
        clock=clock or FakeClock(),
        on_down=reports.down.append,
        on_up=reports.up.append,
    )


@pytest.mark.redis
def test_keys_and_the_injected_clock_reach_lua(redis_url: str) -> None:
    clock = FakeClock(start_time=1_000.25)
    connection = connect(redis_url, clock)
    try:
        assert connection.key("breaker", "api") == f"{connection.prefix}:breaker:api"
        assert connection.now_arg() == "1000250000"
        assert connection.run(_ECHO_NOW, [], [connection.now_arg()]) == b"1000250000"
    finally:
        connection.close()


@pytest.mark.redis
async def test_one_async_client_per_event_loop(redis_url: str) -> None:
    connection = connect(redis_url)
    here = connection.async_client()
    assert connection.async_client() is here
    assert await connection.arun(_ECHO_NOW, [], ["5"]) == b"5"
    seen: list[Any] = []

    def other_loop() -> None:
        async def use() -> None:
            seen.append(connection.async_client())
            seen.append(await connection.arun(_ECHO_NOW, [], ["6"]))
            await connection.async_client().aclose()

        asyncio.run(use())

    thread = threading.Thread(target=other_loop)
    thread.start()
    thread.join()
    assert seen[0] is not here
    assert seen[1] == b"6"
    await connection.aclose()


def _counter_plan(key: str) -> Plan[tuple[int, str]]:
    """Two round trips and an error reply handled inside the plan."""
    replies = yield (pipeline, [("SET", key, 1), ("INCRBY", key, 2)])
    if replies is UNAVAILABLE:
        return -1, "down"
    try:
        yield (execute, "HGET", key, "field")  # WRONGTYPE: a string is not a hash
    except Exception as exc:  # the driver throws the ResponseError in here
        return int(replies[1]), type(exc).__name__
    return int(replies[1]), "no error"


@pytest.mark.redis
async def test_plans_run_sync_and_async_with_errors_thrown_in(redis_url: str) -> None:
    connection = connect(redis_url)
    key = connection.key("counter")
    try:
        assert connection.drive(_counter_plan(key)) == (3, "ResponseError")
        assert await connection.adrive(_counter_plan(key)) == (3, "ResponseError")
        assert connection.available
    finally:
        await connection.aclose()


def test_run_returns_unavailable_while_redis_is_down_and_recovers(tmp_path: Path) -> None:
    clock = FakeClock()
    reports = Reports()
    server = RedisServer(tmp_path, port=free_port())
    connection = connect(server.url.replace("redis://", "redis://:hunter2@"), clock, reports)
    try:
        server.start()
        server.stop()  # killed: the next call finds nothing listening
        assert connection.run(_ECHO_NOW, [], ["1"]) is UNAVAILABLE
        assert not connection.available
        assert len(reports.down) == 1
        assert "hunter2" not in reports.down[0] + connection.last_error
        check = connection.check(name="store", consequence="served locally")
        assert check.status == "warn"
        assert check.output.startswith(f"store {connection.label} unreachable for 0 s (")
        assert check.output.endswith("; served locally")
        assert check.observed_unit == "s"
        server.start()
        # inside the backoff window no call touches the network, even though Redis is back
        assert connection.run(_ECHO_NOW, [], ["2"]) is UNAVAILABLE
        assert connection.calls.value == 2
        clock.advance(0.6)  # past the first backoff: one probe goes out and finds Redis back
        assert connection.run(_ECHO_NOW, [], ["3"]) == b"3"
        assert connection.available
        assert reports.up == [pytest.approx(0.6)]
        assert connection.check(name="store").output == f"store at {connection.label}"
        assert connection.check(passing="fine").status == "pass"
    finally:
        server.stop()
        connection.close()


async def test_arun_returns_unavailable_while_redis_is_down_and_recovers(tmp_path: Path) -> None:
    clock = FakeClock()
    reports = Reports()
    server = RedisServer(tmp_path, port=free_port())
    connection = connect(server.url, clock, reports)
    try:
        assert await connection.arun(_ECHO_NOW, [], ["1"]) is UNAVAILABLE  # nothing listens yet
        assert connection.drive(_counter_plan(connection.key("c"))) == (-1, "down")  # skipped: backoff
        server.start()
        clock.advance(0.6)
        assert await connection.arun(_ECHO_NOW, [], ["2"]) == b"2"  # the probe finds it back
        server.stop()
        assert await connection.arun(_ECHO_NOW, [], ["3"]) is UNAVAILABLE  # stale sockets are dropped
        clock.advance(0.6)
        assert await connection.arun(_ECHO_NOW, [], ["4"]) is UNAVAILABLE  # failed probe: backoff 1 s
        server.start()
        clock.advance(0.6)
        assert await connection.arun(_ECHO_NOW, [], ["5"]) is UNAVAILABLE  # still inside 1 s
        clock.advance(0.5)
        assert await connection.arun(_ECHO_NOW, [], ["6"]) == b"6"
        assert len(reports.down) == 2
        assert len(reports.up) == 2
    finally:
        server.stop()
        await connection.aclose()


def test_a_restarted_redis_costs_no_outage(tmp_path: Path) -> None:
    """A pooled socket left from before a restart is retried once at once: the caller never sees it."""
    reports = Reports()
    with RedisServer(tmp_path, port=free_port()) as server:
        connection = connect(server.url, reports=reports)
        try:
            assert connection.run(_ECHO_NOW, [], ["1"]) == b"1"
            server.stop()
            server.start()
            assert connection.run(_ECHO_NOW, [], ["2"]) == b"2"
            assert connection.available
            assert reports.down == []
        finally:
            connection.close()

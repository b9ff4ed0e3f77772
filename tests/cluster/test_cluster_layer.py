"""The Redis layer on a real cluster: routing, commands across slots, scripts, pub/sub, health, outages."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid

import pytest

from buttress._redis import (
    UNAVAILABLE,
    PubSubConnections,
    RedisConnection,
    Script,
    Subscriber,
    execute,
    ping,
    pipeline,
)
from buttress.errors import MASK
from tests._redis_cluster import RedisCluster

WAIT = 5.0
ECHO = Script("return {KEYS[1], redis.call('GET', KEYS[1])}", "echo")


def _keys(prefix: str, count: int = 60) -> list[str]:
    """Keys spread over many slots (and so over every primary)."""
    return [f"{prefix}:{i}" for i in range(count)]


def _scan_all(connection: RedisConnection, pattern: str) -> list[bytes]:
    found: list[bytes] = []
    cursor = 0
    while True:
        cursor, batch = connection.call(execute, "SCAN", cursor, "MATCH", pattern, "COUNT", 7)
        found += batch
        if cursor == 0:
            return found


def test_commands_route_by_slot_and_multi_key_commands_split(redis_cluster: RedisCluster) -> None:
    connection = RedisConnection(redis_cluster.url, prefix="t")
    prefix = f"buttress-test:{uuid.uuid4().hex}"
    keys = _keys(prefix)
    try:
        assert connection.call(pipeline, [("SET", key, key) for key in keys]) == [True] * len(keys)
        assert connection.call(execute, "MGET", keys[5], f"{prefix}:none", keys[1]) == [
            keys[5].encode(),
            None,
            keys[1].encode(),
        ]
        assert connection.call(execute, "EXISTS", *keys, f"{prefix}:none") == len(keys)
        assert sorted(_scan_all(connection, f"{prefix}:*")) == sorted(key.encode() for key in keys)
        assert connection.run(ECHO, [keys[3]], []) == [keys[3].encode(), keys[3].encode()]
        assert connection.call(execute, "UNLINK", *keys) == len(keys)
        assert _scan_all(connection, f"{prefix}:*") == []
    finally:
        connection.close()


def test_the_async_client_does_the_same(redis_cluster: RedisCluster) -> None:
    connection = RedisConnection(redis_cluster.url, prefix="t")
    prefix = f"buttress-test:{uuid.uuid4().hex}"
    keys = _keys(prefix, 30)

    async def main() -> None:
        assert await connection.acall(pipeline, [("SET", key, "v") for key in keys]) == [True] * len(keys)
        assert await connection.acall(execute, "MGET", keys[0], keys[9]) == [b"v", b"v"]
        assert await connection.arun(ECHO, [keys[2]], []) == [keys[2].encode(), b"v"]
        cursor, found = 0, []
        while True:
            cursor, batch = await connection.acall(execute, "SCAN", cursor, "MATCH", f"{prefix}:*")
            found += batch
            if cursor == 0:
                break
        assert len(found) == len(keys)
        assert await connection.acall(execute, "UNLINK", *keys) == len(keys)
        await connection.aclose()

    asyncio.run(main())


def test_an_async_burst_past_the_pool_size_waits_for_a_connection_instead_of_an_outage(
    redis_cluster: RedisCluster,
) -> None:
    """redis-py's asyncio cluster pools refuse a call past max_connections: that was an outage of the
    whole cluster for one ``asyncio.gather`` of 51 reads."""
    downs: list[str] = []
    connection = RedisConnection(redis_cluster.url, prefix="t", max_connections=4, on_down=downs.append)
    pipelined = [("SET", key, "v") for key in _keys(f"buttress-test:{uuid.uuid4().hex}", 30)]

    async def main() -> list[object]:
        try:
            return list(
                await asyncio.gather(
                    *(connection.acall(execute, "GET", f"burst:{i % 3}") for i in range(60)),
                    *(connection.acall(pipeline, pipelined) for _ in range(10)),
                )
            )
        finally:
            await connection.aclose()

    replies = asyncio.run(main())
    assert UNAVAILABLE not in replies
    assert downs == []


def test_a_cluster_down_is_an_outage_not_an_exception_and_hides_the_password() -> None:
    url = "redis+cluster://:s3cret-pw@127.0.0.1:1,127.0.0.1:2"
    downs: list[str] = []
    connection = RedisConnection(url, prefix="t", on_down=downs.append)
    assert connection.call(execute, "GET", "k") is UNAVAILABLE
    assert asyncio.run(connection.acall(execute, "GET", "k")) is UNAVAILABLE
    assert not connection.available
    assert downs
    assert "s3cret-pw" not in downs[0]
    assert "s3cret-pw" not in repr(connection)
    assert MASK in repr(connection)
    assert not ping(url)


def test_health_ping_asks_every_primary(redis_cluster: RedisCluster) -> None:
    assert ping(redis_cluster.url)


def test_pub_sub_skips_a_dead_seed_and_reaches_subscribers_on_other_nodes(
    redis_cluster: RedisCluster,
) -> None:
    """The listener's first seed is dead (port 1); the sender talks to another node than the listener."""
    listen_url = f"redis+cluster://127.0.0.1:1,127.0.0.1:{redis_cluster.ports[4]}"
    send_url = f"redis+cluster://127.0.0.1:{redis_cluster.ports[2]}"
    channel = f"buttress-test:{uuid.uuid4().hex}"
    got: list[tuple[bytes, bytes]] = []
    arrived = threading.Event()

    def on_message(name: bytes, data: bytes) -> None:
        got.append((name, data))
        arrived.set()

    subscriber = Subscriber(PubSubConnections(listen_url), f"{channel}:*", on_message, lambda: None)
    subscriber.start()
    sender = PubSubConnections(send_url).sender()
    try:
        assert subscriber.subscribed.wait(WAIT)
        sender.send_command("PUBLISH", f"{channel}:x", "hello")
        sender.read_response()
        assert arrived.wait(WAIT)
        assert got == [(f"{channel}:x".encode(), b"hello")]
    finally:
        sender.disconnect()
        subscriber.close()


def test_scripts_are_loaded_again_on_a_promoted_replica(redis_cluster: RedisCluster) -> None:
    """A replica has no scripts of its own: after a failover, NOSCRIPT loads them and the call goes on."""
    connection = RedisConnection(redis_cluster.url, prefix="t", reconnect_min=0.05, reconnect_max=0.2)
    key = f"buttress-test:{uuid.uuid4().hex}"
    assert connection.call(execute, "SET", key, "v")
    assert connection.run(ECHO, [key], []) == [key.encode(), b"v"]
    port = redis_cluster.kill_primary_of(key)
    try:
        redis_cluster.wait_until_promoted(key)
        deadline = time.monotonic() + 10
        while (reply := connection.run(ECHO, [key], [])) is UNAVAILABLE:
            assert time.monotonic() < deadline, "the connection did not find the promoted replica"
        assert reply[0] == key.encode()  # the value itself may predate the replica's last sync
    finally:
        connection.close()
        redis_cluster.restart_node(port)


@pytest.mark.parametrize("scheme", ["redis+cluster", "rediss+cluster"])
def test_a_cluster_url_is_accepted_at_construction_without_connecting(scheme: str) -> None:
    RedisConnection(f"{scheme}://user:pw@127.0.0.1:1,127.0.0.1:2", prefix="t").close()
    PubSubConnections(f"{scheme}://127.0.0.1:1").disconnect()


def test_a_ping_probe_asks_every_primary(redis_cluster: RedisCluster) -> None:
    connection = RedisConnection(redis_cluster.url, prefix="t")

    async def aping() -> object:
        reply = await connection.acall(execute, "PING")
        await connection.aclose_loop()
        return reply

    try:
        assert connection.call(execute, "PING") is True
        assert asyncio.run(aping()) is True
    finally:
        connection.close()


def test_threads_beyond_the_pool_wait_for_a_connection_instead_of_an_outage(
    redis_cluster: RedisCluster,
) -> None:
    """Each node's sync pool is the layer's waiting pool, as with one server: 20 threads, 2 connections."""
    connection = RedisConnection(redis_cluster.url, prefix="t", max_connections=2)
    key = f"buttress-test:{uuid.uuid4().hex}"
    replies: list[object] = []

    def work() -> None:
        replies.extend(connection.call(execute, "INCR", key) for _ in range(25))

    threads = [threading.Thread(target=work) for _ in range(20)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(WAIT * 4)
        assert UNAVAILABLE not in replies
        assert connection.available
        assert connection.call(execute, "GET", key) == b"500"
    finally:
        connection.call(execute, "UNLINK", key)
        connection.close()

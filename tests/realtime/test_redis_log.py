"""The Redis topic log beyond the shared contract: restarts, outages, the outbox, arguments, secrets.

Restart tests run their own ``redis-server`` (:mod:`tests._redis_server`), killed and started again on
the same port; the rest use the shared Redis at ``BUTTRESS_TEST_REDIS_URL`` under a fresh prefix, or a
port nothing listens on. Waits are on conditions with timeouts, never sleeps.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from buttress._redis import RedisConnection, Script
from buttress.errors import MASK, BackendUnavailable, ValidationError
from buttress.realtime import Entry, Position
from buttress.realtime._redis_log import RedisTopicLog
from tests._ports import free_port
from tests._redis_server import RedisServer

WAIT = 20.0


def _prefix() -> str:
    return f"buttress-test:realtime:{uuid.uuid4().hex}"


def _delete_keys(url: str, prefix: str) -> None:
    client = redis.Redis.from_url(url)
    keys = list(client.scan_iter(match="{" + prefix + "}:*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


class Follower:
    """``log.follow()`` drained by a task on the test's loop."""

    def __init__(self, log: RedisTopicLog) -> None:
        self.entries: list[Entry] = []
        self._changed = asyncio.Condition()
        self._task = asyncio.get_running_loop().create_task(self._run(log))

    async def _run(self, log: RedisTopicLog) -> None:
        async for batch in log.follow():
            async with self._changed:
                self.entries.extend(batch)
                self._changed.notify_all()

    async def wait_for(self, predicate: Callable[[list[Entry]], bool], within: float = WAIT) -> bool:
        try:
            async with asyncio.timeout(within):
                async with self._changed:
                    await self._changed.wait_for(lambda: predicate(self.entries))
        except TimeoutError:
            return False
        return True

    async def started(self, log: RedisTopicLog) -> None:
        """Append ticks until one arrives: the follower has taken its starting point."""
        for _ in range(int(WAIT / 0.05)):
            log.append("tick", {}, 0.0)
            if await self.wait_for(lambda entries: any(e.topic == "tick" for e in entries), 0.05):
                return
        raise AssertionError(f"the follower received nothing: {log.status()}")

    async def stop(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisServer]:
    with RedisServer(tmp_path) as redis_server:
        yield redis_server


@pytest.fixture
async def shared_log(redis_url: str) -> AsyncIterator[RedisTopicLog]:
    prefix = _prefix()
    log = RedisTopicLog(redis_url, prefix=prefix)
    assert log.wait_connected(WAIT), log.status()
    yield log
    await log.aclose()
    _delete_keys(redis_url, prefix)


def _dead_url(password: str = "") -> str:
    auth = f":{password}@" if password else ""
    return f"redis://{auth}127.0.0.1:{free_port()}/0"


# -- a Redis restart ---------------------------------------------------------------------------------


async def test_after_a_restart_a_follower_receives_everything_within_two_seconds_in_the_new_epoch(
    server: RedisServer,
) -> None:
    log = RedisTopicLog(server.url, prefix=_prefix(), max_backoff=1.0)
    follower = Follower(log)
    try:
        await follower.started(log)
        for index in range(20):
            log.append("before", {"n": index}, time.time())
        assert await follower.wait_for(lambda entries: sum(e.topic == "before" for e in entries) == 20)
        old_epoch = follower.entries[-1].epoch

        server.stop()
        for index in range(20):
            log.append("during", {"n": index}, time.time())
        assert await asyncio.to_thread(log.wait_disconnected, WAIT), log.status()
        with pytest.raises(BackendUnavailable) as unavailable:
            await log.read_after(Position(old_epoch, 1), 10)
        assert unavailable.value.backend == "redis"
        assert log.check().status == "warn"
        assert log.status()["connected"] is False

        server.start()
        restarted = time.monotonic()
        for index in range(20):
            log.append("after", {"n": index}, time.time())

        def everything(entries: list[Entry]) -> bool:
            return sum(e.topic in ("during", "after") for e in entries) == 40

        assert await follower.wait_for(everything), log.status()
        took = time.monotonic() - restarted
        assert took <= 2.0, f"followers were back {took:.2f} s after the restart"
        check = log.check()  # the replay refused during the outage does not leave the log reported down
        assert (check.status, log.status()["connected"]) == ("pass", True), check
    finally:
        await follower.stop()
        await log.aclose()

    received = follower.entries
    assert [e.data["n"] for e in received if e.topic == "before"] == list(range(20))
    fresh = [e for e in received if e.epoch != old_epoch]
    assert fresh, "nothing arrived in a new epoch"
    # From position 1, unless the batch in flight at the kill was written again first (its reply was
    # lost with the old Redis): the follower, which had it already, skips it.
    assert [e.position for e in fresh] == list(range(fresh[0].position, fresh[0].position + len(fresh)))
    assert [(e.topic, e.data["n"]) for e in fresh] == [
        *(("during", n) for n in range(20)),
        *(("after", n) for n in range(20)),
    ]
    assert [e.offset for e in fresh if e.topic == "after"] == list(range(1, 21))
    status = log.status()
    assert (status["dropped"], status["failed"], status["epoch"]) == (0, 0, fresh[0].epoch)


async def test_a_replay_after_a_restart_says_the_epoch_changed(server: RedisServer) -> None:
    log = RedisTopicLog(server.url, prefix=_prefix())
    try:
        log.append("t", {}, 0.0)
        assert await asyncio.to_thread(log.flush, WAIT)
        before = await log.read_after(Position("", 0), 0)

        server.stop()
        server.start()
        # The pooled connection died with the server; the Redis layer dials again once, at once.
        replay = await log.read_after(Position(before.epoch, before.last), 10)
        assert replay.reset == "epoch"
        assert replay.epoch != before.epoch
        assert replay.last == 0

        log.append("t", {}, 0.0)  # appends join the epoch the replay announced
        assert await asyncio.to_thread(log.flush, WAIT)
        assert (await log.read_after(Position(replay.epoch, 0), 10)).entries[0].id == f"{replay.epoch}-1"
    finally:
        await log.aclose()


async def test_appends_survive_a_script_flush(server: RedisServer) -> None:
    log = RedisTopicLog(server.url, prefix=_prefix())
    try:
        log.append("t", {"n": 1}, 0.0)
        assert await asyncio.to_thread(log.flush, WAIT)
        client = redis.Redis.from_url(server.url)
        client.script_flush()
        client.close()
        log.append("t", {"n": 2}, 0.0)
        assert await asyncio.to_thread(log.flush, WAIT)
        replay = await log.read_after(Position(log.status()["epoch"], 0), 10)
        assert [e.data["n"] for e in replay.entries] == [1, 2]
    finally:
        await log.aclose()


# -- while Redis is unreachable ----------------------------------------------------------------------


def test_a_full_outbox_drops_the_oldest_entries_and_counts_them() -> None:
    log = RedisTopicLog(_dead_url(), prefix=_prefix(), outbox_size=5)
    try:
        assert log.wait_disconnected(WAIT)
        for index in range(20):
            log.append("t", {"n": index}, 0.0)  # never blocks, never raises
        status = log.status()
        assert (status["outbox"], status["dropped"], status["connected"]) == (5, 15, False)
        check = log.check()
        assert check.status == "warn"
        assert "5 entries waiting, 15 dropped" in check.output
        assert not log.info().available
    finally:
        log.close()
    assert log.status()["dropped"] == 20  # what was still waiting at close is counted too


async def test_read_after_raises_backend_unavailable_while_redis_is_unreachable() -> None:
    log = RedisTopicLog(_dead_url(), prefix=_prefix())
    try:
        with pytest.raises(BackendUnavailable) as first:
            await log.read_after(Position("abc", 1), 10)
        with pytest.raises(BackendUnavailable):  # skipped until the next probe: no wait on the network
            await log.read_after(Position("abc", 1), 10)
        assert "unreachable" in str(first.value)
    finally:
        await log.aclose()


async def test_the_password_is_masked_in_status_errors_and_repr() -> None:
    secret = "s3cret-pa55"
    log = RedisTopicLog(_dead_url(secret), prefix=_prefix())
    try:
        assert await asyncio.to_thread(log.wait_disconnected, WAIT)
        with pytest.raises(BackendUnavailable) as unavailable:
            await log.read_after(Position("abc", 1), 10)
        shown = [repr(log), str(log.status()), log.check().output, log.info().detail, str(unavailable.value)]
        assert all(secret not in text for text in shown), shown
        assert MASK in log.status()["url"]
        assert log.status()["last_error"]
    finally:
        await log.aclose()


# -- the script and the keys -------------------------------------------------------------------------


def test_a_batch_sent_again_after_a_lost_reply_is_written_once(redis_url: str) -> None:
    prefix = _prefix()
    tag = "{" + prefix + "}"
    keys = [f"{tag}:stream", f"{tag}:offsets", f"{tag}:epoch", f"{tag}:position", f"{tag}:done:test"]
    connection = RedisConnection(redis_url, prefix=prefix)
    script = Script.file("realtime_append")
    args = ["e1e1e1e1", 100, 1, "s1", "a", "0.5", '{"n":1}', "b", "0.5", '{"n":2}']
    try:
        first = connection.run(script, keys, args)
        again = connection.run(script, keys, args)
        following = connection.run(script, keys, ["ignored1", 100, 2, "s1", "a", "1.0", '{"n":3}'])
        assert first == [b"e1e1e1e1", 2, 2]
        assert again == [b"e1e1e1e1", 2, 0]
        assert following == [b"e1e1e1e1", 3, 1]
        assert connection.call(lambda client: client.xlen(keys[0])) == 3
        assert connection.call(lambda client: client.hgetall(keys[1])) == {b"a": b"2", b"b": b"1"}
        (_, last), *_ = connection.call(lambda client: client.xrevrange(keys[0], count=1))
        assert last == {
            b"epoch": b"e1e1e1e1",
            b"topic": b"a",
            b"offset": b"2",
            b"time": b"1.0",
            b"data": b'{"n":3}',
            b"batch": b"s1:2",
        }
    finally:
        connection.close()
        _delete_keys(redis_url, prefix)


async def test_a_lost_epoch_key_starts_a_new_epoch_from_position_one(
    shared_log: RedisTopicLog, redis_url: str
) -> None:
    log = shared_log
    for index in range(5):
        log.append("t", {"n": index}, 0.0)
    assert await asyncio.to_thread(log.flush, WAIT)
    old = log.status()["epoch"]
    client = redis.Redis.from_url(redis_url)
    client.delete("{" + log.prefix + "}:epoch")  # evicted, say; the stream is still there
    client.close()

    log.append("t", {"n": 5}, 0.0)
    assert await asyncio.to_thread(log.flush, WAIT)

    epoch = log.status()["epoch"]
    assert epoch != old
    replay = await log.read_after(Position(epoch, 0), 100)
    assert [(e.position, e.offset, e.data["n"]) for e in replay.entries] == [(1, 1, 5)]


def test_keys_share_one_hash_tag(shared_log: RedisTopicLog, redis_url: str) -> None:
    shared_log.append("t", {}, 0.0)
    assert shared_log.flush(WAIT)
    client = redis.Redis.from_url(redis_url)
    try:
        keys = sorted(k.decode() for k in client.scan_iter(match="{" + shared_log.prefix + "}:*"))
    finally:
        client.close()
    tag = "{" + shared_log.prefix + "}"
    assert [k for k in keys if ":done:" not in k] == [
        f"{tag}:{n}" for n in ("epoch", "offsets", "position", "stream")
    ]
    assert all(k.startswith(tag + ":") for k in keys)


def test_data_that_is_not_json_is_refused_in_the_caller(shared_log: RedisTopicLog) -> None:
    with pytest.raises(ValidationError) as refused:
        shared_log.append("t", {"when": object()}, 0.0)
    assert refused.value.field == "data"
    assert shared_log.status()["outbox"] == 0


# -- arguments ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("arguments", "field"),
    [
        ({"url": "http://127.0.0.1:6379"}, "redis_url"),
        ({"prefix": "a{b}"}, "prefix"),
        ({"prefix": ""}, "prefix"),
        ({"retention": 0}, "retention"),
        ({"retention": True}, "retention"),
        ({"outbox_size": 0}, "outbox_size"),
        ({"batch_size": 1.5}, "batch_size"),
        ({"min_backoff": 0}, "min_backoff"),
        ({"max_backoff": -1}, "max_backoff"),
        ({"min_backoff": 2.0, "max_backoff": 1.0}, "max_backoff"),
        ({"socket_timeout": 0}, "socket_timeout"),
    ],
)
def test_bad_arguments_name_the_field_and_the_fix(arguments: dict[str, Any], field: str) -> None:
    options = {"url": "redis://127.0.0.1:6379/0", **arguments}
    url = options.pop("url")
    with pytest.raises(ValidationError) as invalid:
        RedisTopicLog(url, **options)
    assert invalid.value.field == field
    assert "e.g." in str(invalid.value)

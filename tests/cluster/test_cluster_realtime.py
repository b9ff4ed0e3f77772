"""The Redis topic log on a real Redis Cluster: the conformance suite, blocking reads, and a failover.

Every key of one log is under the hash tag ``{<prefix>}``, so one primary serves the whole log: its
append script, the followers' ``XREAD BLOCK`` and the replay all go there through the cluster client.
The suite from tests/conformance/test_topic_log_conformance.py runs unchanged on the cluster (only its
subject fixture differs: the cluster is the session's own, so keys are not cleaned up one by one).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator

import pytest
from redis.crc import key_slot

from buttress.realtime import Position
from buttress.realtime._redis_log import RedisTopicLog
from tests._redis_cluster import RedisCluster
from tests.conformance import test_topic_log_conformance as suite
from tests.conformance.test_topic_log_conformance import *  # noqa: F403

RECOVERY = 40.0  # seconds from the kill until appends are written again


@pytest.fixture(params=["redis"])
async def subject(redis_url: str) -> AsyncIterator[suite.Subject]:
    subject = suite.Subject("redis", redis_url)
    yield subject
    subject.redis_url = None  # nothing to clean: the session's cluster goes with its keys
    await subject.close_all()


async def test_a_follower_blocks_in_xread_on_the_logs_primary_and_wakes_for_an_append(
    redis_cluster: RedisCluster,
) -> None:
    prefix = f"rt-{uuid.uuid4().hex[:8]}"
    log = RedisTopicLog(redis_cluster.url, prefix=prefix)
    try:
        assert log.wait_connected(suite.WAIT)
        follower = suite.Follower(log)
        # two blocking reads come back empty (each waits up to 1 s on the primary), then one wakes
        assert not await follower.wait_for(bool, 2.5)
        started = time.monotonic()
        log.append("orders", {"n": 1}, 0.0)
        assert await follower.wait_for(lambda entries: [e.topic for e in entries] == ["orders"], 5)
        assert time.monotonic() - started < 1.0  # woken by the append, not by the next round
        slot = key_slot(("{" + prefix + "}").encode())
        assert all(
            key_slot(f"{{{prefix}}}:{part}".encode()) == slot for part in ("stream", "epoch", "position")
        )
        await follower.stop()
    finally:
        await log.aclose()


async def _reading(log: RedisTopicLog, follower: suite.Follower) -> None:
    """Return once ``follower`` receives what is appended now (it starts after the newest entry)."""
    for _ in range(int(suite.WAIT / 0.05)):
        log.append("tick", {}, 0.0)
        assert await asyncio.to_thread(log.flush, suite.WAIT)
        if await follower.wait_for(lambda got: any(e.topic == "tick" for e in got), 0.05):
            return
    raise AssertionError("the follower received nothing")


async def test_appends_made_while_the_logs_primary_is_down_are_written_after_the_promotion(
    redis_cluster: RedisCluster,
) -> None:
    prefix = f"rt-{uuid.uuid4().hex[:8]}"
    log = RedisTopicLog(redis_cluster.url, prefix=prefix)
    killed = None
    try:
        assert log.wait_connected(suite.WAIT)
        for n in range(5):
            log.append("before", {"n": n}, 0.0)
        assert await asyncio.to_thread(log.flush, suite.WAIT)
        follower = suite.Follower(log)
        await _reading(log, follower)
        killed_at = time.monotonic()
        killed = redis_cluster.kill_primary_of("{" + prefix + "}")
        for n in range(5):
            log.append("during", {"n": n}, 0.0)
        assert await asyncio.to_thread(log.flush, RECOVERY), log.status()
        written_after = time.monotonic() - killed_at
        print(f"\ntopic log failover: appends written again {written_after:.2f} s after the kill")
        status = log.status()
        assert status["dropped"] == 0
        assert status["failed"] == 0
        epoch = (await log.read_after(Position("no-such-epoch", 0), 1)).epoch
        topics = [entry.topic for entry in await suite.read_all(log, epoch)]
        assert topics[-5:] == ["during"] * 5  # the replica may have lost the last "before" writes, not these
        # the follower reads on from the new primary
        assert await follower.wait_for(
            lambda entries: sum(e.topic == "during" for e in entries) == 5, RECOVERY
        )
        await follower.stop()
    finally:
        await log.aclose()
        if killed is not None:
            redis_cluster.restart_node(killed)

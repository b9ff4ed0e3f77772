"""One suite for the topic logs: the memory ring and Redis Streams must keep the same contract.

Every test runs on :class:`~buttress.realtime.MemoryTopicLog` and on
:class:`~buttress.realtime._redis_log.RedisTopicLog` (a real Redis at ``BUTTRESS_TEST_REDIS_URL``, a fresh
prefix per test, its keys deleted afterwards). The contract is the docstring of
:class:`~buttress.realtime.TopicLog`. Waits are on conditions with generous timeouts, never sleeps; the
Redis log's appends are written by a thread, so the suite waits for its outbox to drain
(:meth:`Subject.flush`) before it reads what it wrote.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from buttress.events import TransportInfo
from buttress.health_types import CheckResult
from buttress.realtime import Entry, MemoryTopicLog, Position, Replay, TopicLog
from buttress.realtime._redis_log import RedisTopicLog

WAIT = 20.0  # upper bound of every wait on a condition


class Follower:
    """A task draining ``log.follow()`` on the test's loop, with what it received so far."""

    def __init__(self, log: TopicLog, after: Position | None = None) -> None:
        self.entries: list[Entry] = []
        self.batches = 0
        self._changed = asyncio.Condition()
        self._task = asyncio.get_running_loop().create_task(self._run(log, after))

    async def _run(self, log: TopicLog, after: Position | None) -> None:
        async for batch in log.follow(after):
            async with self._changed:
                self.entries.extend(batch)
                self.batches += 1
                self._changed.notify_all()

    async def wait_for(self, predicate: Callable[[list[Entry]], bool], within: float = WAIT) -> bool:
        try:
            async with asyncio.timeout(within):
                async with self._changed:
                    await self._changed.wait_for(lambda: predicate(self.entries))
        except TimeoutError:
            return False
        return True

    async def stop(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


class Subject:
    """Topic logs of one kind; on Redis, logs of one subject share a prefix (as processes would)."""

    def __init__(self, kind: str, redis_url: str | None) -> None:
        self.kind = kind
        self.redis_url = redis_url
        self.prefix = f"buttress-test:realtime:{uuid.uuid4().hex}"
        self.logs: list[TopicLog] = []
        self.followers: list[Follower] = []

    def log(self, *, retention: int = 10_000) -> TopicLog:
        log: TopicLog
        if self.kind == "memory":
            log = MemoryTopicLog(retention=retention)
        else:
            assert self.redis_url is not None
            log = RedisTopicLog(self.redis_url, prefix=self.prefix, retention=retention)
            assert log.wait_connected(WAIT), log.status()
        self.logs.append(log)
        return log

    async def flush(self, log: TopicLog) -> None:
        """Wait until every append so far is in the log (the memory log appends at once)."""
        if isinstance(log, RedisTopicLog):
            assert await asyncio.to_thread(log.flush, WAIT), log.status()

    def follow(self, log: TopicLog, after: Position | None = None) -> Follower:
        follower = Follower(log, after)
        self.followers.append(follower)
        return follower

    async def following(self, log: TopicLog, follower: Follower) -> None:
        """Return once ``follower`` receives what is appended now (its starting point is taken).

        A follower starts after the newest entry when it first runs; appending a tick until one arrives
        proves it is reading, without knowing how long its first round trip takes.
        """
        for _ in range(int(WAIT / 0.05)):
            log.append("tick", {}, 0.0)
            await self.flush(log)
            if await follower.wait_for(lambda entries: any(e.topic == "tick" for e in entries), 0.05):
                return
        raise AssertionError(f"the follower received nothing within {WAIT} s: {_status(log)}")

    async def close_all(self) -> None:
        for follower in self.followers:
            await follower.stop()
        for log in self.logs:
            if isinstance(log, RedisTopicLog):
                await log.aclose()
            else:
                log.close()
        if self.redis_url is not None:
            import redis

            client = redis.Redis.from_url(self.redis_url)
            keys = list(client.scan_iter(match="{" + self.prefix + "}:*", count=1000))
            if keys:
                client.delete(*keys)
            client.close()


def _status(log: TopicLog) -> dict[str, Any]:
    return log.status()


@pytest.fixture(params=["memory", "redis"])
async def subject(request: pytest.FixtureRequest) -> AsyncIterator[Subject]:
    url = request.getfixturevalue("redis_url") if request.param == "redis" else None
    subject = Subject(str(request.param), url)
    yield subject
    await subject.close_all()


async def epoch_of(log: TopicLog) -> str:
    """The log's epoch, as a client learns it: from the reset of a position no log has."""
    replay = await log.read_after(Position("no-such-epoch", 0), 1)
    assert replay.reset == "epoch"
    return replay.epoch


async def read_all(log: TopicLog, epoch: str, *, limit: int = 7) -> list[Entry]:
    """Every entry from position 1, in pages of ``limit`` chained by their last position."""
    entries: list[Entry] = []
    while True:
        replay = await log.read_after(Position(epoch, entries[-1].position if entries else 0), limit)
        assert replay.reset is None, replay
        if not replay.entries:
            return entries
        assert len(replay.entries) <= limit
        entries.extend(replay.entries)


# -- positions and offsets ---------------------------------------------------------------------------


async def test_positions_and_per_topic_offsets_count_from_one_without_gaps(subject: Subject) -> None:
    log = subject.log()
    epoch = await epoch_of(log)
    topics = ["jobs.1.progress", "jobs.2.status", "jobs.1.progress", "ops", "jobs.2.status"] * 6
    for index, topic in enumerate(topics):
        log.append(topic, {"n": index, "text": "é✓"}, 1_700_000_000.0 + index / 8)
    await subject.flush(log)

    entries = await read_all(log, epoch)

    assert [e.position for e in entries] == list(range(1, len(topics) + 1))
    assert [e.topic for e in entries] == topics
    assert [e.data for e in entries] == [{"n": i, "text": "é✓"} for i in range(len(topics))]
    assert [e.time for e in entries] == [1_700_000_000.0 + i / 8 for i in range(len(topics))]
    assert {e.epoch for e in entries} == {epoch}
    assert [e.id for e in entries[:2]] == [f"{epoch}-1", f"{epoch}-2"]
    for topic in set(topics):
        assert [e.offset for e in entries if e.topic == topic] == list(range(1, topics.count(topic) + 1))


async def test_appends_from_four_threads_get_distinct_positions_and_keep_each_threads_order(
    subject: Subject,
) -> None:
    log = subject.log()
    epoch = await epoch_of(log)
    per_thread = 250
    start = threading.Barrier(4)

    def append_many(worker: int) -> None:
        start.wait(WAIT)
        for sequence in range(per_thread):
            log.append(f"worker.{worker}", {"worker": worker, "sequence": sequence}, 0.0)

    threads = [threading.Thread(target=append_many, args=(worker,)) for worker in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT)
    await subject.flush(log)

    entries = await read_all(log, epoch, limit=300)

    assert [e.position for e in entries] == list(range(1, 4 * per_thread + 1))
    for worker in range(4):
        mine = [e for e in entries if e.topic == f"worker.{worker}"]
        assert [e.data["sequence"] for e in mine] == list(range(per_thread))
        assert [e.offset for e in mine] == list(range(1, per_thread + 1))


# -- follow ------------------------------------------------------------------------------------------


async def test_follow_yields_in_position_order_starting_after_the_newest_entry(subject: Subject) -> None:
    log = subject.log()
    for index in range(5):
        log.append("before", {"n": index}, 0.0)
    await subject.flush(log)

    follower = subject.follow(log)
    await subject.following(log, follower)
    for index in range(40):
        log.append(f"after.{index % 3}", {"n": index}, 0.0)

    assert await follower.wait_for(lambda entries: sum(e.topic.startswith("after") for e in entries) == 40)
    received = follower.entries
    assert all(e.topic != "before" for e in received)
    assert received[0].position > 5
    assert [e.position for e in received] == list(range(received[0].position, received[-1].position + 1))
    assert [e.data["n"] for e in received if e.topic.startswith("after")] == list(range(40))


async def test_two_followers_receive_the_same_entries(subject: Subject) -> None:
    log = subject.log()
    first, second = subject.follow(log), subject.follow(log)
    await subject.following(log, first)
    await subject.following(log, second)
    for index in range(25):
        log.append("news", {"n": index}, 0.0)

    def all_news(entries: list[Entry]) -> bool:
        return sum(e.topic == "news" for e in entries) == 25

    assert await first.wait_for(all_news)
    assert await second.wait_for(all_news)
    news = [[e for e in f.entries if e.topic == "news"] for f in (first, second)]
    assert news[0] == news[1]


async def test_a_released_loop_follows_and_replays_again(subject: Subject) -> None:
    log = subject.log()
    first = subject.follow(log)
    await subject.following(log, first)
    log.append("news", {"n": 1}, 0.0)
    assert await first.wait_for(lambda entries: any(e.topic == "news" for e in entries))
    await first.stop()
    await log.release_loop()  # what a stopping server's hub does on its loop
    await log.release_loop()  # twice is harmless

    second = subject.follow(log)
    await subject.following(log, second)
    log.append("news", {"n": 2}, 0.0)
    assert await second.wait_for(lambda entries: any(e.topic == "news" for e in entries))
    news = [e for e in second.entries if e.topic == "news"]
    assert [e.data for e in news] == [{"n": 2}]
    replay = await log.read_after(Position(news[0].epoch, 0), 100)
    assert [e.data["n"] for e in replay.entries if e.topic == "news"] == [1, 2]


async def test_follow_after_a_position_of_the_epoch_starts_there(subject: Subject) -> None:
    """The hub's start: read the newest position, then follow after it, and miss nothing in between."""
    log = subject.log()
    epoch = await epoch_of(log)
    for index in range(10):
        log.append("t", {"n": index}, 0.0)
    await subject.flush(log)
    start = await log.read_after(Position("", 0), 0)
    assert (start.epoch, start.last, start.entries) == (epoch, 10, ())
    for index in range(10, 15):  # appended after the read, before following starts
        log.append("t", {"n": index}, 0.0)
    await subject.flush(log)

    follower = subject.follow(log, Position(epoch, 7))
    for index in range(15, 20):
        log.append("t", {"n": index}, 0.0)

    assert await follower.wait_for(lambda entries: any(e.data["n"] == 19 for e in entries))
    assert [e.position for e in follower.entries] == list(range(8, 21))
    assert [e.data["n"] for e in follower.entries] == list(range(7, 20))


@pytest.mark.parametrize("after", [Position("0badc0de", 3), Position("<epoch>", 99), None])
async def test_follow_after_another_epoch_or_a_future_position_starts_after_the_newest(
    subject: Subject, after: Position | None
) -> None:
    log = subject.log()
    epoch = await epoch_of(log)
    for index in range(5):
        log.append("before", {"n": index}, 0.0)
    await subject.flush(log)
    if after is not None and after.epoch == "<epoch>":
        after = Position(epoch, after.position)

    follower = subject.follow(log, after)
    await subject.following(log, follower)

    assert all(e.topic == "tick" for e in follower.entries)
    assert follower.entries[0].position > 5


# -- read_after --------------------------------------------------------------------------------------


async def test_read_after_replays_exactly_what_followed_the_position(subject: Subject) -> None:
    log = subject.log()
    epoch = await epoch_of(log)
    for index in range(30):
        log.append("t", {"n": index}, 0.0)
    await subject.flush(log)

    page = await log.read_after(Position(epoch, 10), 5)
    assert isinstance(page, Replay)
    assert (page.epoch, page.last, page.reset) == (epoch, 30, None)
    assert [e.position for e in page.entries] == [11, 12, 13, 14, 15]

    tail = await log.read_after(Position(epoch, 27), 100)
    assert [e.position for e in tail.entries] == [28, 29, 30]
    assert tail.last == 30

    caught_up = await log.read_after(Position(epoch, 30), 100)
    assert (caught_up.entries, caught_up.last, caught_up.reset) == ((), 30, None)

    assert [e.data["n"] for e in await read_all(log, epoch, limit=4)] == list(range(30))


async def test_replay_then_follow_leaves_no_gap_and_no_duplicate(subject: Subject) -> None:
    """What a reconnecting client does: follow first, replay up to ``last``, then take live entries."""
    log = subject.log()
    epoch = await epoch_of(log)
    for index in range(10):
        log.append("t", {"n": index}, 0.0)
    await subject.flush(log)

    follower = subject.follow(log)
    await subject.following(log, follower)
    for index in range(10, 20):
        log.append("t", {"n": index}, 0.0)
    await subject.flush(log)
    replay = await log.read_after(Position(epoch, 4), 1000)
    for index in range(20, 30):
        log.append("t", {"n": index}, 0.0)
    assert await follower.wait_for(lambda entries: any(e.data.get("n") == 29 for e in entries))

    live = [e for e in follower.entries if e.position > replay.last]
    seen = [*replay.entries, *live]
    assert [e.position for e in seen] == list(range(5, seen[-1].position + 1))
    assert [e.data["n"] for e in seen if e.topic == "t"] == list(range(4, 30))


async def test_a_position_of_another_epoch_or_from_the_future_is_reset_epoch(subject: Subject) -> None:
    log = subject.log()
    epoch = await epoch_of(log)
    log.append("t", {}, 0.0)
    await subject.flush(log)

    other = await log.read_after(Position("0badc0de", 1), 10)
    assert (other.epoch, other.entries, other.last, other.reset) == (epoch, (), 1, "epoch")
    future = await log.read_after(Position(epoch, 2), 10)
    assert (future.entries, future.reset) == ((), "epoch")


async def test_a_trimmed_position_is_reset_retention_and_the_newest_retention_entries_are_kept(
    subject: Subject,
) -> None:
    retention = 10
    log = subject.log(retention=retention)
    epoch = await epoch_of(log)
    for index in range(300):
        log.append("t", {"n": index}, 0.0)
    await subject.flush(log)

    trimmed = await log.read_after(Position(epoch, 1), 10)
    assert (trimmed.epoch, trimmed.entries, trimmed.last, trimmed.reset) == (epoch, (), 300, "retention")

    kept = await log.read_after(Position(epoch, 300 - retention), 100)
    assert kept.reset is None
    assert [e.position for e in kept.entries] == list(range(301 - retention, 301))


async def test_an_empty_log_replays_nothing_from_position_zero(subject: Subject) -> None:
    log = subject.log()
    epoch = await epoch_of(log)
    replay = await log.read_after(Position(epoch, 0), 10)
    assert (replay.entries, replay.last, replay.reset) == ((), 0, None)


# -- several logs on one backend ---------------------------------------------------------------------


async def test_two_redis_logs_on_one_prefix_share_one_order(subject: Subject) -> None:
    """Two processes recording into one Redis log: one sequence of positions, both replay it alike."""
    if subject.kind == "memory":
        pytest.skip("memory logs are separate worlds: one per process")
    first, second = subject.log(), subject.log()
    epoch = await epoch_of(first)
    follower = subject.follow(first)
    await subject.following(first, follower)
    for index in range(50):
        (first if index % 2 else second).append("shared", {"n": index, "by": index % 2}, 0.0)
        if index % 10 == 9:  # interleave the two senders' batches
            await subject.flush(first)
            await subject.flush(second)
    await subject.flush(first)
    await subject.flush(second)

    from_first, from_second = await read_all(first, epoch), await read_all(second, epoch)
    assert from_first == from_second
    assert [e.position for e in from_first] == list(range(1, len(from_first) + 1))
    shared = [e for e in from_first if e.topic == "shared"]
    assert sorted(e.data["n"] for e in shared) == list(range(50))
    assert [e.offset for e in shared] == list(range(1, 51))
    assert await follower.wait_for(lambda entries: sum(e.topic == "shared" for e in entries) == 50)
    assert [e for e in follower.entries if e.topic == "shared"] == shared


# -- lifecycle and reporting -------------------------------------------------------------------------


async def test_close_is_idempotent_and_reporting_answers_after_it(subject: Subject) -> None:
    log = subject.log()
    assert isinstance(log, TopicLog)
    log.append("t", {}, 0.0)
    await subject.flush(log)
    assert log.check().status == "pass"
    assert log.info().available

    log.close()
    log.close()
    log.append("t", {"after": "close"}, 0.0)  # neither raises nor blocks

    status = log.status()
    assert status["log"] == subject.kind
    assert status["retention"] == 10_000
    assert isinstance(log.info(), TransportInfo)
    assert isinstance(log.check(), CheckResult)

"""Realtime on the Redis log: any process serves and replays what any published; a restart loses nothing."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest
import redis
from websockets.asyncio.client import connect

from buttress.events import EventBus
from buttress.realtime._redis_log import RedisTopicLog
from tests._redis_server import RedisServer

from ._live import WAIT, events, messages, until
from .conftest import realtime_server
from .test_resume_storm import _resume_storm

pytestmark = pytest.mark.redis


@contextmanager
def _redis_log(url: str, **options: object) -> Iterator[RedisTopicLog]:
    prefix = f"buttress-test:realtime:{uuid.uuid4().hex}"
    log = RedisTopicLog(url, prefix=prefix, **options)  # type: ignore[arg-type]
    try:
        yield log
    finally:
        log.close()
        _delete_keys(url, prefix)


def _delete_keys(url: str, prefix: str) -> None:
    client = redis.Redis.from_url(url)
    keys = list(client.scan_iter(match="{" + prefix + "}:*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


async def test_an_event_published_in_one_process_reaches_a_client_of_another_and_replays_there(
    redis_url: str,
) -> None:
    prefix = f"buttress-test:realtime:{uuid.uuid4().hex}"
    with ExitStack() as stack:
        # Two "processes": each its own bus (no bus transport between them), one shared Redis log.
        first = stack.enter_context(realtime_server(log=RedisTopicLog(redis_url, prefix=prefix)))
        second = stack.enter_context(realtime_server(log=RedisTopicLog(redis_url, prefix=prefix)))
        (publisher, server_a), (_other, server_b) = first, second
        async with connect(f"ws://{server_b}/ws?topics=news.*") as socket:
            await until(socket, "subscribed")
            publisher.publish("news.a", {"n": 1})
            got = await events(socket, 1)
        for n in range(2, 5):
            publisher.publish("news.a", {"n": n})
        assert publisher.flush()
        async with connect(f"ws://{server_a}/ws?topics=news.*&last_id={got[0]['id']}") as socket:
            replayed = await events(socket, 3)
        stack.callback(_delete_keys, redis_url, prefix)
    assert got[0]["data"] == {"n": 1}
    assert [event["data"]["n"] for event in replayed] == [2, 3, 4]


async def test_a_thousand_reconnects_with_resume_on_redis(redis_url: str) -> None:
    with _redis_log(redis_url, retention=1_000_000) as log, realtime_server(log=log) as (realtime, server):
        received, published, resets = await _resume_storm(realtime, server)
    assert resets == 0
    assert received == published[published.index(received[0]) :]


async def test_a_redis_restart_mid_stream_loses_nothing(tmp_path: Path) -> None:
    with (
        RedisServer(tmp_path) as server_process,
        _redis_log(server_process.url) as log,
        EventBus() as bus,
        realtime_server(log=log, bus=bus) as (realtime, server),
    ):
        async with connect(f"ws://{server}/ws?topics=news.*") as socket:
            await until(socket, "subscribed")
            received: list[int] = []
            stop = threading.Event()
            published: list[int] = []

            def publish() -> None:
                n = 0
                while not stop.wait(0.002):
                    realtime.publish("news.seq", {"n": n})
                    published.append(n)
                    n += 1

            async def read_until(count: int) -> None:
                async with asyncio.timeout(WAIT):
                    while len(received) < count:
                        received.extend(
                            m["data"]["n"] for m in await messages(socket) if m["type"] == "event"
                        )

            thread = threading.Thread(target=publish, daemon=True)
            thread.start()
            try:
                await read_until(50)
                server_process.stop()
                outage = len(published)
                await asyncio.to_thread(lambda: time.sleep(0.5))  # the outage lasts: events go on
                during = len(published) - outage
                server_process.start()
                restarted = time.monotonic()
                await read_until(outage + during + 1)
                back_within = time.monotonic() - restarted
                await read_until(len(published) + 20)
            finally:
                stop.set()
                thread.join(WAIT)
            assert realtime.flush()
            await read_until(len(published))
    assert during > 50
    assert back_within < 2.0
    assert received == list(range(len(published)))

"""Two processes, each with a tiered backend over one Redis and a Redis event bus: a delete or a tag
invalidation in one empties the other's L1 (which would otherwise serve for its 60 s l1_ttl)."""

from __future__ import annotations

import multiprocessing
import time
import uuid
from typing import Any

import pytest

from buttress.cache._backend import Entry
from buttress.cache._tiered import TieredBackend
from tests.cache._tiered_child import WAIT, Shared, redis_bus, second_process

SPAWN_WAIT = 60.0  # a spawned interpreter imports buttress first; generous, and only an upper bound


def _message(outbox: Any) -> tuple[Any, ...]:
    message: tuple[Any, ...] = outbox.get(timeout=SPAWN_WAIT)
    assert message[0] != "error", message[1]
    return message


@pytest.mark.redis
def test_a_delete_and_a_tag_invalidation_empty_the_other_processes_l1(redis_url: str) -> None:
    try:
        from buttress.cache._redis import RedisBackend
    except ImportError as exc:
        pytest.skip(f"RedisBackend is not available yet (src/buttress/cache/_redis.py: {exc})")
    shared = Shared(redis_url, f"buttress-test:{uuid.uuid4().hex}", f"buttress-test:{uuid.uuid4().hex}")
    deleted, tagged, untouched = "ns:deleted", "other:tagged", "ns:untouched"
    keys = [deleted, tagged, untouched]
    bus = redis_bus(shared.url, shared.channel_prefix)
    tiered = TieredBackend(RedisBackend(shared.url, prefix=shared.key_prefix), l1_ttl=60.0, bus=bus)
    context = multiprocessing.get_context("spawn")
    inbox, outbox = context.Queue(), context.Queue()
    process = context.Process(target=second_process, args=(shared, keys, inbox, outbox))
    try:
        tiered.set(deleted, Entry("d"), 600)
        tiered.set(tagged, Entry("t", tags=("artists",)), 600)
        tiered.set(untouched, Entry("u"), 600)
        process.start()
        assert _message(outbox) == ("ready", keys)  # process 2's L1 holds all three

        inbox.put(("expect", deleted))
        started = time.monotonic()
        assert tiered.delete([deleted]) == 1
        outcome, key, seen_at, held = _message(outbox)
        assert (outcome, key, held) == ("gone", deleted, [tagged, untouched])
        assert seen_at - started < WAIT

        inbox.put(("expect", tagged))
        started = time.monotonic()
        assert tiered.invalidate_tags(["artists"]) == 1
        outcome, key, seen_at, held = _message(outbox)
        assert (outcome, key, held) == ("gone", tagged, [untouched])
        assert seen_at - started < WAIT

        process.join(SPAWN_WAIT)
        assert process.exitcode == 0
    finally:
        if process.is_alive():
            process.terminate()
            process.join(WAIT)
        for queue in (inbox, outbox):
            queue.close()
            queue.join_thread()
        tiered.close()
        bus.close()

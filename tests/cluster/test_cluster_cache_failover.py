"""A cluster primary killed mid-run: the cache's outage policy holds, and after the promotion it works again.

One test drives a Redis backend and a tiered backend (L1 in front of it, invalidations on a Redis bus)
while the primary serving some of their keys is SIGKILLed. Every call is timed and any exception
recorded: callers must see none (a Redis backend serves misses or its memory fallback, the tiered
backend its L1, which it clears when its invalidation channel had a gap), and once the replica is
promoted set/get/invalidate reach Redis again within a bound.
The seconds of degraded service are printed (``pytest -s``) for docs/redis-cluster.md.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis.cluster

from buttress.cache._backend import Entry
from buttress.cache._redis import RedisBackend
from buttress.cache._tiered import TieredBackend
from tests._redis_cluster import RedisCluster
from tests.cache._tiered_child import redis_bus

RECOVERY = 20.0  # seconds from the kill until the cache must reach Redis again (promotion takes ~2-3 s)
KEYS = 40


class Run:
    """Times every cache call and keeps whatever a caller would have had raised at it."""

    def __init__(self) -> None:
        self.errors: list[str] = []
        self.calls = 0
        self.slowest = 0.0

    def __call__(self, call: Callable[..., Any], *args: Any) -> Any:
        started = time.monotonic()
        try:
            return call(*args)
        except Exception as exc:  # what a caller would see is what this test measures
            self.errors.append(f"{type(exc).__name__}: {exc}")
            return None
        finally:
            self.calls += 1
            self.slowest = max(self.slowest, time.monotonic() - started)


@pytest.fixture
def raw(redis_cluster: RedisCluster) -> Iterator[redis.cluster.RedisCluster]:
    """A plain redis-py cluster client: what another process reads, to check the cache wrote through."""
    client = redis.cluster.RedisCluster(host="127.0.0.1", port=redis_cluster.ports[0])
    yield client
    client.close()


def test_a_killed_primary_degrades_then_recovers_without_errors(
    redis_cluster: RedisCluster, raw: redis.cluster.RedisCluster, caplog: pytest.LogCaptureFixture
) -> None:
    prefix = f"buttress-test:{uuid.uuid4().hex}"
    backend = RedisBackend(redis_cluster.url, prefix=prefix, reconnect_min=0.05, reconnect_max=0.2)
    bus = redis_bus(redis_cluster.url, f"buttress-test:{uuid.uuid4().hex}")
    tiered = TieredBackend(backend, bus=bus, l1_ttl=60.0)
    run = Run()
    keys = [f"ns:k{i}" for i in range(KEYS)]
    for key in keys:
        tiered.set(key, Entry(key, tags=("all",)), 60)
    victim = keys[0]
    assert raw.get(backend.redis_key(victim)) is not None

    killed_port = redis_cluster.kill_primary_of(backend.redis_key(victim))
    killed_at = time.monotonic()
    degraded_at: float | None = None
    l1_served = 0
    try:
        while True:  # mid-run: keep calling as a service would, until the victim's slot is writable again
            now = time.monotonic()
            assert now - killed_at < RECOVERY, f"the cache did not reach Redis {RECOVERY}s after the kill"
            got = run(tiered.get, keys[1])  # L1's copy, or (L1 cleared on a pub/sub gap) L2's answer
            l1_served += got is not None
            run(backend.get, keys[2])  # a miss or the fallback's copy, never an exception
            run(backend.set, victim, Entry("during"), 60)
            if not backend.available and degraded_at is None:
                degraded_at = time.monotonic()
            if backend.available and raw.get(backend.redis_key(victim)) is not None:
                stored = raw.get(backend.redis_key(victim))
                if stored is not None and stored.endswith(b'"during"'):
                    break
        recovered_at = time.monotonic()

        # usable again: set, get, invalidate reach Redis (checked with another client)
        run(tiered.set, victim, Entry("after", tags=("all",)), 60)
        assert run(backend.get, victim).value == "after"
        assert raw.get(backend.redis_key(victim)).endswith(b'"after"')
        removed = run(tiered.invalidate_tags, ["all"])
        assert removed is not None
        assert removed >= 1
        assert raw.get(backend.redis_key(victim)) is None
        assert tiered.get(victim) is None
        assert run.errors == [], f"callers saw errors: {run.errors[:5]}"
        outages = [r for r in caplog.records if r.name == "buttress.cache" and "unreachable (" in r.message]
        assert len(outages) == 1, "one outage, not a flapping between live and dead slots"
        print(  # the figures docs/redis-cluster.md quotes (pytest -s)
            f"\ncluster failover: degraded {recovered_at - killed_at:.2f} s after the kill "
            f"(marked down {0.0 if degraded_at is None else degraded_at - killed_at:.2f} s in), "
            f"{run.calls} calls, {len(run.errors)} errors, {l1_served} tiered reads answered, "
            f"slowest call {run.slowest * 1000:.0f} ms, degraded calls {backend.degraded_calls.value}"
        )
    finally:
        tiered.close()
        bus.close()
        redis_cluster.restart_node(killed_port)  # heal the session's cluster for the tests after this one

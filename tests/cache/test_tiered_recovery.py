"""Every process's L1 recovers from a Redis outage, even one that only reads from L1 (issue 13, item 3).

Two independent caches with their own connections share a ``redis-server`` the test starts on a spare
port and kills: a writer, and an idle reader whose reads all hit its L1. The reader must drop what its L1
held within one probe interval of Redis returning (a background probe while L2 is down, timed on an
injected clock), and after every resubscription of its invalidation channel (broadcasts sent while it was
reconnecting are lost). Each wait is on an event (``cache.l1.cleared``) or on a real server restarting.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import cast

import pytest

from buttress.cache import Cache
from buttress.cache._redis import RedisBackend
from buttress.cache._tiered import TieredBackend
from buttress.clock import FakeClock
from buttress.events import RedisTransport
from tests._redis_server import RedisServer
from tests.cache._tiered_child import WAIT, Cleared, redis_bus

pytestmark = pytest.mark.redis


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisServer]:
    with RedisServer(tmp_path) as started:
        yield started


def _writer(server: RedisServer, prefix: str) -> Cache:
    """Another process's cache: its own connection, no broadcast (as if its broadcast were lost)."""
    return Cache(RedisBackend(server.url, prefix=prefix))


def test_an_idle_reader_drops_l1_within_one_probe_interval_of_redis_returning(server: RedisServer) -> None:
    prefix = f"t{uuid.uuid4().hex[:8]}"
    clock = FakeClock(auto_advance=False)  # the reader's probe waits on this clock; the test moves it
    bus = redis_bus(server.url, f"ev{uuid.uuid4().hex[:8]}")
    l2 = RedisBackend(server.url, prefix=prefix, clock=clock, reconnect_min=1.0, reconnect_max=4.0)
    tiered = TieredBackend(l2, l1_ttl=5.0, bus=bus, clock=clock)
    cleared = Cleared(bus, tiered)
    reader, writer = Cache(tiered, clock=clock), _writer(server, prefix)
    try:
        writer.set("horoscope", "old")
        assert reader.get("horoscope") == "old"  # L1 holds it now
        server.stop()
        assert reader.get("unseen") is None  # an L1 miss reaches Redis: the outage starts here
        assert tiered.degraded  # L1 now serves "old" for its full TTL (3,600 s), not 5 s
        clock.wait_for_sleepers(1)  # the background probe waits for its interval (1 s)

        server.start()
        writer.set("horoscope", "new")  # written while the reader's L1 still holds "old"
        clock.advance(4.0)
        assert reader.get("horoscope") == "old"  # an L1 hit: no network, so no recovery by itself
        clock.advance(1.0)  # past the probe interval: the probe finds Redis back
        cleared.wait("recovered")
        assert not tiered.degraded
        assert reader.get("horoscope") == "new"
    finally:
        tiered.close()
        writer.backend.close()
        bus.close()


def test_every_resubscription_clears_l1_as_broadcasts_sent_meanwhile_were_lost(server: RedisServer) -> None:
    prefix = f"t{uuid.uuid4().hex[:8]}"
    bus = redis_bus(server.url, f"ev{uuid.uuid4().hex[:8]}")
    tiered = TieredBackend(RedisBackend(server.url, prefix=prefix), l1_ttl=600.0, bus=bus)
    cleared = Cleared(bus, tiered)
    reader, writer = Cache(tiered), _writer(server, prefix)
    transport = cast(RedisTransport, bus.transport)
    try:
        writer.set("horoscope", "old")
        assert reader.get("horoscope") == "old"  # held in L1 for 600 s
        server.stop()
        assert transport.wait_disconnected(WAIT)  # the listener lost its subscription
        server.start()
        writer.set("horoscope", "new")  # no broadcast reaches the reader (as one sent while it reconnects)
        assert transport.wait_connected(WAIT * 4)  # the listener subscribed again
        cleared.wait("resubscribed")
        assert not tiered.degraded  # the reader never called Redis during the outage
        assert reader.get("horoscope") == "new"
    finally:
        tiered.close()
        writer.backend.close()
        bus.close()


def test_no_probe_thread_runs_on_a_clock_whose_sleeps_return_at_once(tmp_path: Path) -> None:
    server = RedisServer(tmp_path)  # never started: Redis is down from the first call
    clock = FakeClock()  # auto_advance: a probe loop would move time forward by itself
    tiered = TieredBackend(RedisBackend(server.url, clock=clock), clock=clock)
    before = clock.monotonic()
    assert tiered.get("ns:k") is None
    assert tiered.degraded
    assert tiered._prober is None
    assert clock.monotonic() == before
    tiered.close()

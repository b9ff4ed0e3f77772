"""The tiered backend's own logic: L1 in front of L2, broadcasts between backends, outages and recovery.

L2 is a real MemoryBackend that counts the reads reaching it and can report itself unavailable (the duck-typed
``available`` a RedisBackend exposes); time is a FakeClock. Broadcasts travel on real Redis-transport buses.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from buttress.cache._backend import NEVER, BackendInfo, Entry
from buttress.cache._memory import MemoryBackend
from buttress.cache._tiered import _STRIPES, INVALIDATE_TOPIC, TieredBackend
from buttress.clock import FakeClock
from buttress.errors import ValidationError
from buttress.events import EventBus
from buttress.observe.health import CheckResult
from tests._redis_server import RedisServer
from tests.cache._tiered_child import Arrivals, Cleared, redis_bus


class Switchable(MemoryBackend):
    """A memory L2 that counts reads, can run a hook in the middle of a read, and can say it is down."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__(clock=clock)
        self.available = True
        self.reads = 0
        self.during_read: Callable[[], object] | None = None
        self.locks: list[tuple[str, str]] = []
        self.closed = 0

    def get(self, key: str) -> Entry | None:
        self.reads += 1
        entry = MemoryBackend.get(self, key)
        self._hook()
        return entry

    def get_many(self, keys: Sequence[str]) -> list[Entry | None]:
        self.reads += 1
        entries = [MemoryBackend.get(self, key) for key in keys]
        self._hook()
        return entries

    def _hook(self) -> None:
        hook, self.during_read = self.during_read, None
        if hook is not None:
            hook()

    def acquire_lock(self, key: str, token: str, lease: float) -> bool:
        self.locks.append((key, token))
        return key != "ns:held"

    def release_lock(self, key: str, token: str) -> None:
        self.locks.append((key, ""))

    async def aacquire_lock(self, key: str, token: str, lease: float) -> bool:
        return self.acquire_lock(key, token, lease)

    async def arelease_lock(self, key: str, token: str) -> None:
        self.release_lock(key, token)

    def info(self) -> BackendInfo:
        return dataclasses.replace(super().info(), available=self.available)

    def check(self) -> CheckResult:
        if not self.available:
            return CheckResult("warn", "L2 unreachable, serving locally")
        return super().check()

    def close(self) -> None:
        self.closed += 1

    async def aclose(self) -> None:
        self.close()


@pytest.fixture
def l2(clock: FakeClock) -> Switchable:
    return Switchable(clock)


@pytest.fixture
def tiered(l2: Switchable, clock: FakeClock) -> Iterator[TieredBackend]:
    backend = TieredBackend(l2, l1_ttl=5.0, clock=clock)
    yield backend
    backend.close()


@pytest.fixture
def buses(redis_url: str) -> Iterator[Callable[[], EventBus]]:
    """Redis-transport buses on one fresh channel prefix (one per simulated process)."""
    prefix = f"buttress-test:{uuid.uuid4().hex}"
    made: list[EventBus] = []

    def make() -> EventBus:
        made.append(redis_bus(redis_url, prefix))
        return made[-1]

    yield make
    for bus in made:
        bus.close()


def degraded(tiered: TieredBackend) -> bool:
    """Read again (a plain ``tiered.degraded`` stays narrowed for mypy after an earlier assert)."""
    return tiered.degraded


def value(entry: Entry | None) -> Any:
    assert entry is not None
    return entry.value


# -- L1 in front of L2 -------------------------------------------------------------------------------------


def test_l1_serves_without_touching_l2_until_l1_ttl(
    tiered: TieredBackend, l2: Switchable, clock: FakeClock
) -> None:
    tiered.set("ns:k", Entry("v"), 60)
    l2.delete(["ns:k"])  # behind the tiered backend's back: only L1 still has it
    reads = l2.reads
    assert value(tiered.get("ns:k")) == "v"
    clock.advance(4.99)
    assert value(tiered.get("ns:k")) == "v"
    assert l2.reads == reads
    clock.advance(0.01)
    assert tiered.get("ns:k") is None
    assert l2.reads == reads + 1


def test_a_miss_reads_l2_once_and_keeps_a_copy_for_l1_ttl(
    tiered: TieredBackend, l2: Switchable, clock: FakeClock
) -> None:
    l2.set("ns:k", Entry("old"), 60)
    assert value(tiered.get("ns:k")) == "old"
    assert value(tiered.get("ns:k")) == "old"
    assert l2.reads == 1
    l2.set("ns:k", Entry("new"), 60)
    assert value(tiered.get("ns:k")) == "old"  # L1 is allowed to lag by up to l1_ttl
    clock.advance(5.0)
    assert value(tiered.get("ns:k")) == "new"
    assert l2.reads == 2


def test_a_missing_key_is_not_remembered(tiered: TieredBackend, l2: Switchable) -> None:
    assert tiered.get("ns:nothing") is None
    l2.set("ns:nothing", Entry(1), None)
    assert value(tiered.get("ns:nothing")) == 1


def test_an_l1_copy_never_outlives_a_ttl_shorter_than_l1_ttl(tiered: TieredBackend, clock: FakeClock) -> None:
    tiered.set("ns:short", Entry("v"), 2.0)
    clock.advance(1.99)
    assert value(tiered.get("ns:short")) == "v"
    clock.advance(0.01)
    assert tiered.get("ns:short") is None


def test_get_many_answers_in_order_with_one_l2_call_for_the_l1_misses(
    tiered: TieredBackend, l2: Switchable
) -> None:
    tiered.set("ns:a", Entry("A"), 60)
    l2.set("ns:b", Entry("B"), 60)
    found = tiered.get_many(["ns:b", "ns:a", "ns:x", "ns:b"])
    assert [e.value if e else None for e in found] == ["B", "A", None, "B"]
    assert l2.reads == 1
    assert [value(e) for e in tiered.get_many(["ns:a", "ns:b"])] == ["A", "B"]
    assert l2.reads == 1  # both now in L1
    assert tiered.get_many([]) == []
    assert l2.reads == 1


def test_an_invalidation_during_the_l2_read_keeps_the_read_value_out_of_l1(
    tiered: TieredBackend, l2: Switchable
) -> None:
    l2.set("ns:k", Entry("before"), 60)
    l2.during_read = lambda: tiered.delete(["ns:k"])  # lands after L2 answered, before L1 is filled
    assert value(tiered.get("ns:k")) == "before"
    assert tiered.l1.peek("ns:k") is None
    assert tiered.get("ns:k") is None

    l2.set("ns:k", Entry("old"), 60)
    l2.during_read = lambda: tiered.set("ns:k", Entry("new"), 60)  # a write racing the read
    assert value(tiered.get("ns:k")) == "old"
    assert value(tiered.get("ns:k")) == "new"  # L1 holds the write, not the older value read

    l2.set("ns:t", Entry("tagged", tags=("t",)), 60)
    l2.during_read = lambda: tiered.invalidate_tags(["t"])
    assert [value(e) for e in tiered.get_many(["ns:t"])] == ["tagged"]
    assert tiered.l1.peek("ns:t") is None

    l2.set("ns:other", Entry("kept"), 60)
    unrelated = next(
        f"ns:u{i}" for i in range(10) if hash(f"ns:u{i}") % _STRIPES != hash("ns:other") % _STRIPES
    )
    l2.during_read = lambda: tiered.delete([unrelated])  # another key (stripe): this fill goes ahead
    assert value(tiered.get("ns:other")) == "kept"
    assert tiered.l1.peek("ns:other") is not None


def test_writes_reach_both_tiers_and_replace(tiered: TieredBackend, l2: Switchable) -> None:
    tiered.set("ns:k", Entry("v1", fresh_until=123.0, tags=("a",)), 60)
    tiered.set("ns:k", Entry("v2", tags=("b",)), 60)
    tiered.set_many([("ns:m", Entry(1)), ("ns:n", Entry(None))], None)
    assert value(l2.get("ns:k")) == "v2"
    entry = tiered.get("ns:k")
    assert entry is not None
    assert (entry.value, entry.fresh_until, entry.tags) == ("v2", NEVER, ("b",))
    assert [value(e) for e in tiered.get_many(["ns:m", "ns:n"])] == [1, None]
    assert tiered.invalidate_tags(["a"]) == 0  # the old tags went with the old value


def test_delete_clear_and_tags_drop_l1_copies_too(tiered: TieredBackend, l2: Switchable) -> None:
    for key, tags in [("ns:a", ("t",)), ("ns:b", ()), ("other:c", ("t",)), ("other:d", ())]:
        tiered.set(key, Entry(key, tags=tags), 60)
    assert tiered.delete(["ns:b", "ns:missing"]) == 1
    assert tiered.get("ns:b") is None
    assert tiered.invalidate_tags(["t"]) == 2
    assert tiered.get("ns:a") is None
    assert tiered.get("other:c") is None
    tiered.set("ns:e", Entry("e"), 60)
    assert tiered.clear("ns") == 1
    assert tiered.get("ns:e") is None
    assert value(tiered.get("other:d")) == "other:d"
    assert tiered.exists("other:d")
    assert not tiered.exists("ns:e")
    assert len(l2) == 1
    assert len(tiered.l1) == 1


def test_incr_and_expire_never_leave_an_outdated_l1_copy(tiered: TieredBackend, clock: FakeClock) -> None:
    tiered.set("ns:count", Entry(1), None)
    assert value(tiered.get("ns:count")) == 1
    assert tiered.incr("ns:count", 2, None) == 3
    assert value(tiered.get("ns:count")) == 3

    tiered.set("ns:k", Entry("v"), 60)
    assert tiered.expire("ns:k", 1.0)
    assert not tiered.expire("ns:missing", 1.0)
    clock.advance(1.0)
    assert tiered.get("ns:k") is None


def test_locks_are_l2s(tiered: TieredBackend, l2: Switchable) -> None:
    assert tiered.acquire_lock("ns:k", "tok", 30.0)
    assert not tiered.acquire_lock("ns:held", "tok", 30.0)
    tiered.release_lock("ns:k", "tok")
    assert l2.locks == [("ns:k", "tok"), ("ns:held", "tok"), ("ns:k", "")]


async def test_async_twins_share_the_same_tiers(
    tiered: TieredBackend, l2: Switchable, clock: FakeClock
) -> None:
    await tiered.aset("ns:k", Entry("v", tags=("t",)), 60)
    await tiered.aset_many([("ns:a", Entry("A")), ("other:b", Entry("B"))], 60)
    l2.delete(["ns:k"])
    assert value(await tiered.aget("ns:k")) == "v"  # from L1
    assert [e.value if e else None for e in await tiered.aget_many(["ns:a", "ns:zz", "other:b"])] == [
        "A",
        None,
        "B",
    ]
    assert await tiered.aexists("ns:k")
    assert await tiered.adelete(["ns:a"]) == 1
    assert await tiered.aget("ns:a") is None
    assert await tiered.aincr("ns:n", 5, None) == 5
    assert value(await tiered.aget("ns:n")) == 5
    assert await tiered.aexpire("ns:n", 1.0)
    assert await tiered.ainvalidate_tags(["t"]) == 0  # L2 no longer had it; L1's copy is dropped all the same
    assert await tiered.aget("ns:k") is None
    assert await tiered.aclear("other") == 1
    assert await tiered.aget("other:b") is None
    assert await tiered.aacquire_lock("ns:x", "t", 1.0)
    await tiered.arelease_lock("ns:x", "t")
    assert l2.locks == [("ns:x", "t"), ("ns:x", "")]
    clock.advance(1.0)
    assert await tiered.aget("ns:n") is None
    l2.set("ns:late", Entry("L"), 60)
    assert value(await tiered.aget("ns:late")) == "L"
    assert tiered.l1.peek("ns:late") is not None


# -- broadcasts ---------------------------------------------------------------------------------------------


@pytest.mark.redis
def test_invalidations_reach_a_tiered_backend_on_another_bus(
    buses: Callable[[], EventBus], l2: Switchable, clock: FakeClock
) -> None:
    bus_a, bus_b = buses(), buses()
    assert bus_a.id != bus_b.id
    a = TieredBackend(l2, bus=bus_a, clock=clock)
    b = TieredBackend(l2, bus=bus_b, clock=clock)
    arrivals = Arrivals(bus_b)
    for key, tags in [("ns:k", ()), ("ns:j", ("t",)), ("other:m", ("t",)), ("ns:n", ()), ("other:o", ())]:
        l2.set(key, Entry(f"{key}-1", tags=tags), 60)
    assert [value(e) for e in b.get_many(["ns:k", "ns:j", "other:m", "ns:n", "other:o"])]
    assert len(b.l1) == 5

    assert a.delete(["ns:k"]) == 1
    assert arrivals.wait(1)[0] == {"keys": ["ns:k"], "source": a.source}
    assert b.l1.peek("ns:k") is None
    assert b.get("ns:k") is None
    assert b.l1.peek("ns:j") is not None

    a.invalidate_tags(["t"])
    assert arrivals.wait(2)[1]["tags"] == ["t"]
    assert b.l1.peek("ns:j") is None
    assert b.l1.peek("other:m") is None
    assert b.l1.peek("ns:n") is not None

    a.set("other:o", Entry("other:o-2"), 60)  # other L1s must not serve the old value for l1_ttl
    assert arrivals.wait(3)[2]["keys"] == ["other:o"]
    assert value(b.get("other:o")) == "other:o-2"

    a.clear("ns")
    assert arrivals.wait(4)[3]["namespace"] == "ns"
    assert b.l1.peek("ns:n") is None
    assert b.l1.peek("other:o") is not None
    for backend in (a, b):
        backend.close()
    assert [s.handler for s in bus_b.subscriptions] == [arrivals._record]  # b no longer listens


@pytest.mark.redis
def test_a_backend_ignores_its_own_broadcasts(
    buses: Callable[[], EventBus], l2: Switchable, clock: FakeClock
) -> None:
    bus = buses()
    tiered = TieredBackend(l2, bus=bus, clock=clock)
    seen: list[dict[str, Any]] = []
    bus.subscribe(INVALIDATE_TOPIC, lambda event: seen.append({**event.payload, "origin": event.origin}))
    tiered.set("ns:k", Entry("v"), 60)
    assert bus.flush(5.0)
    assert seen == [{"keys": ["ns:k"], "source": tiered.source, "origin": bus.id}]
    l2.delete(["ns:k"])
    assert value(tiered.get("ns:k")) == "v"  # had it applied its own echo, L1 would be empty now
    tiered.close()


def test_on_a_memory_bus_broadcasts_reach_the_backends_of_this_process(
    l2: Switchable, clock: FakeClock
) -> None:
    with EventBus() as bus:
        a = TieredBackend(l2, bus=bus, clock=clock)
        b = TieredBackend(l2, bus=bus, clock=clock)
        a.set("ns:k", Entry("v"), 60)
        assert value(b.get("ns:k")) == "v"
        a.delete(["ns:k"])
        assert bus.flush(5.0)
        assert b.l1.peek("ns:k") is None
        a.close()
        b.close()
        assert not bus.subscriptions


class OneSlot(TieredBackend):
    queue_size = 1


def test_a_full_invalidation_queue_clears_l1(l2: Switchable, clock: FakeClock) -> None:
    with EventBus() as bus:
        a = TieredBackend(l2, bus=bus, clock=clock)
        b = OneSlot(l2, bus=bus, clock=clock)
        b.set("ns:never-deleted", Entry("v"), 60)
        with b._lock:  # b's handler blocks on its first broadcast, so the next ones overflow its queue
            for i in range(3):
                a.delete([f"ns:x{i}"])
        assert bus.flush(5.0)
        assert len(b.l1) == 0  # a broadcast was lost: nothing in L1 can be trusted
        a.close()
        b.close()


# -- outages ------------------------------------------------------------------------------------------------


def test_during_an_outage_l1_serves_for_the_full_ttl_and_recovery_clears_it(
    tiered: TieredBackend, l2: Switchable, clock: FakeClock
) -> None:
    tiered.set("ns:long", Entry("L"), 60)
    tiered.set("ns:eight", Entry("E"), 8)
    tiered.set("ns:forever", Entry("F"), None)
    l2.set("ns:read", Entry("R", fresh_until=clock.time() + 30), 40)
    assert value(tiered.get("ns:read")) == "R"
    clock.advance(1.0)
    l2.available = False
    l2.clear_all()  # Redis is gone: L2's local fallback knows nothing
    tiered.set("ns:during", Entry("D"), 20)  # the first call after the outage: it is noticed here
    assert tiered.degraded

    clock.advance(6.0)  # past l1_ttl (5 s) for everything
    reads = l2.reads
    assert [value(tiered.get(k)) for k in ("ns:long", "ns:eight", "ns:forever", "ns:read", "ns:during")] == [
        "L",
        "E",
        "F",
        "R",
        "D",
    ]
    assert l2.reads == reads
    clock.advance(1.0)  # 8 s since ns:eight was written: its full TTL
    assert tiered.get("ns:eight") is None
    clock.advance(23.0)  # 30 s since ns:read was read fresh for 30 s more; 21 s since ns:during
    assert tiered.get("ns:read") is None
    assert tiered.get("ns:during") is None
    assert value(tiered.get("ns:long")) == "L"
    assert tiered.info().available is False
    assert tiered.check().status == "warn"

    l2.available = True
    assert tiered.get("ns:probe") is None  # a call that finds L2 back
    assert not degraded(tiered)
    assert len(tiered.l1) == 0
    assert tiered.get("ns:long") is None
    assert tiered.get("ns:forever") is None


def test_entries_kept_through_an_outage_go_back_to_l1_ttl_afterwards(
    tiered: TieredBackend, l2: Switchable, clock: FakeClock
) -> None:
    l2.available = False
    tiered.set("ns:k", Entry("v"), 60)
    assert tiered.degraded
    l2.available = True
    tiered.set("ns:j", Entry("w"), 60)  # recovery: L1 cleared, then this write is kept for l1_ttl only
    assert tiered.l1.peek("ns:k") is None
    l2.delete(["ns:j"])
    clock.advance(5.0)
    assert tiered.get("ns:j") is None


def test_a_backend_built_during_an_outage_starts_degraded(l2: Switchable, clock: FakeClock) -> None:
    l2.available = False
    tiered = TieredBackend(l2, clock=clock)
    assert tiered.degraded
    tiered.set("ns:k", Entry("v"), 60)
    l2.clear_all()
    clock.advance(30.0)
    assert value(tiered.get("ns:k")) == "v"
    assert tiered.delete(["ns:k"]) == 1  # L2's fallback had nothing; L1's copy counts
    tiered.close()


@pytest.mark.redis
async def test_a_real_redis_outage_l1_serves_and_recovery_clears_it(tmp_path: Path) -> None:
    try:
        from buttress.cache._redis import RedisBackend
    except ImportError as exc:
        pytest.skip(f"RedisBackend is not available yet (src/buttress/cache/_redis.py: {exc})")
    clock = FakeClock(auto_advance=False)  # the background probe waits on it: time moves only here
    bus = EventBus()
    with RedisServer(tmp_path) as server:
        l2 = RedisBackend(server.url, prefix="t", clock=clock, reconnect_min=1.0, reconnect_max=1.0)
        tiered = TieredBackend(l2, l1_ttl=5.0, clock=clock, bus=bus)
        cleared = Cleared(bus, tiered)
        tiered.set("ns:forever", Entry("F"), None)
        tiered.set("ns:eight", Entry("E"), 8)
        l2.set("ns:read", Entry("R"), 600)
        assert value(tiered.get("ns:read")) == "R"
        server.stop()

        tiered.set("ns:during", Entry("D"), 60)  # Redis refuses: the outage starts here
        assert not l2.info().available
        assert tiered.degraded
        clock.wait_for_sleepers(1)  # the probe thread waits for the reconnect interval
        clock.advance(6.0)  # past l1_ttl; RedisBackend's own fallback holds none of the first three
        got = [await tiered.aget(k) for k in ("ns:forever", "ns:eight", "ns:read", "ns:during")]
        assert [e.value if e else None for e in got] == ["F", "E", "R", "D"]
        clock.advance(2.0)
        assert tiered.get("ns:eight") is None  # its own 8 s TTL still applies
        assert tiered.check().status == "warn"

        server.start()  # empty: a restarted Redis without persistence
        assert value(tiered.get("ns:forever")) == "F"  # an L1 hit does not touch Redis
        clock.wait_for_sleepers(1)
        clock.advance(1.0)  # one reconnect interval: the probe thread finds Redis back
        cleared.wait("recovered")
        assert l2.info().available
        assert not degraded(tiered)
        assert len(tiered.l1) == 0
        assert tiered.get("ns:forever") is None
        tiered.set("ns:after", Entry("A"), 60)
        assert value(l2.get("ns:after")) == "A"
        await tiered.aclose()
    bus.close()


# -- reporting, validation, lifecycle --------------------------------------------------------------------


def test_info_and_check_describe_both_tiers(tiered: TieredBackend, l2: Switchable) -> None:
    tiered.set("ns:a", Entry(1), 60)
    tiered.set("other:b", Entry(2), 60)
    info = tiered.info()
    assert (info.name, info.available, info.entries) == ("tiered", True, 2)
    assert info.detail == "L1 memory (5 s) + L2 in-process LRU, max 10000 entries"
    assert info.sizes == {"ns": 1, "other": 1}
    check = tiered.check()
    assert check.status == "pass"
    assert "L1 memory 2 entries" in check.output
    assert "L2 memory" in check.output
    assert tiered.name == "tiered"
    assert "l1_ttl=5" in repr(tiered)


@pytest.mark.parametrize("l1_ttl", [0, -1.0, float("inf"), float("nan"), True, "5"])
def test_l1_ttl_must_be_positive_seconds(l2: Switchable, l1_ttl: Any) -> None:
    with pytest.raises(ValidationError, match="l1_ttl must be a number of seconds") as caught:
        TieredBackend(l2, l1_ttl=l1_ttl)
    assert caught.value.field == "l1_ttl"


def test_l2_must_be_a_backend() -> None:
    with pytest.raises(ValidationError, match="l2 must be a cache backend") as caught:
        TieredBackend(object())  # type: ignore[arg-type]
    assert caught.value.field == "l2"


async def test_close_unsubscribes_and_closes_the_tiers_once(l2: Switchable, clock: FakeClock) -> None:
    bus = EventBus()
    tiered = TieredBackend(l2, bus=bus, clock=clock)
    assert [s.handler for s in bus.subscriptions] == [tiered._on_invalidate]
    tiered.close()
    tiered.close()
    assert not bus.subscriptions
    assert l2.closed == 1
    again = TieredBackend(l2, bus=bus, clock=clock)
    await again.aclose()
    await again.aclose()
    assert not bus.subscriptions
    assert l2.closed == 2
    bus.close()

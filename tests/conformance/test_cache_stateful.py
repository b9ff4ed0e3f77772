"""Memory and Redis cache backends, driven by the same random operations, must give the same answers.

A hypothesis state machine applies each operation (set with and without a TTL and tags, get, get_many,
set_many, delete, exists, incr, expire, clear a namespace, invalidate tags, advance the clock) to a
:class:`MemoryBackend` and a :class:`RedisBackend` (a real server at ``BUTTRESS_TEST_REDIS_URL``, a fresh
key prefix per example, its keys removed afterwards) and requires equal results, equal errors, and equal
contents of every key after each step. It runs through the sync methods and through the async twins.

Time: both backends share one injected :class:`FakeClock`, but the Redis backend cannot follow it for
expiry. Its TTLs are Redis's own (``SET PX``, ``PEXPIRE``, on the server's clock); the injected clock
drives only its outage backoff. So the machine uses only TTLs both honour without waiting: ``None``, TTLs
far longer than the clock can advance in one example (nothing expires by time, on either side), and TTLs
<= 0 (the entry is gone at once: Redis unlinks it, memory holds it expired). The clock rule then checks
that advancing the injected clock within a TTL changes nothing; expiry at the TTL itself is covered by
``test_cache_conformance.py``, which waits out a 100 ms Redis TTL with a bounded poll. No test sleeps.

Counters stay within +-2**40 per value and per delta (at most 2**45 after 30 steps), inside the range
where every backend is exact: Redis keeps an integer stored with tags or freshness in Lua doubles (exact
below 2**53). The signed 64-bit edge of bare counters has its own tests below.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from buttress.cache._backend import NEVER, CacheBackend, Entry
from buttress.cache._memory import MemoryBackend
from buttress.cache._redis import RedisBackend
from buttress.clock import FakeClock
from buttress.errors import ValidationError
from buttress.observe.metrics import MetricsRegistry

LONG = 1_000_000.0  # seconds: a TTL the clock never reaches in one example
STEP = 1_000.0  # the most the clock advances in one step (30 steps: 30_000 s, far below LONG)
SMALL = 2**40  # bound of counter values and deltas (see the module docstring)

NAMESPACES = ("n", "n*", "m")  # "n*" holds a glob character: clearing "n" must not reach it
KEYS = [f"{ns}:{name}" for ns in NAMESPACES for name in ("a", "b", "c:d")]
TAGS = ("t", "u", "a,b", "%2C", "x y")  # "," and "%" are escaped in Redis's envelope

ttls = st.sampled_from([None, LONG, 2 * LONG, 0.0, -1.0])
keys = st.sampled_from(KEYS)
tags = st.lists(st.sampled_from(TAGS), max_size=3).map(tuple)
# Values that survive the JSON serializer unchanged (no tuples, no int dict keys, no NaN).
leaves = (
    st.none()
    | st.booleans()
    | st.integers(-SMALL, SMALL)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8)
)
values = st.recursive(
    leaves,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
)
envelopes = st.builds(Entry, values, st.sampled_from([NEVER, 1_700_000_000.25, 0.0]), tags)
entries = envelopes | st.builds(Entry, st.integers(-SMALL, SMALL))  # bare integers: what incr creates


def shape(entry: Entry | None) -> tuple[str, float, tuple[str, ...]] | None:
    """An entry as comparable data (``repr`` tells 1 from True and 0.0 from -0.0)."""
    if entry is None:
        return None
    return repr(entry.value), entry.fresh_until, tuple(entry.tags)


def outcome(call: Callable[[], Any]) -> tuple[str, Any]:
    """What a call returned, or the ValidationError it raised (by field: messages may differ)."""
    try:
        return "ok", call()
    except ValidationError as exc:
        return "error", exc.field


class Pair:
    """One backend called sync, or through its async twins on a loop of its own."""

    def __init__(self, backend: CacheBackend, mode: str) -> None:
        self.backend = backend
        self.loop = asyncio.new_event_loop() if mode == "async" else None

    def call(self, name: str, *args: Any) -> Any:
        if self.loop is None:
            return getattr(self.backend, name)(*args)
        return self.loop.run_until_complete(getattr(self.backend, "a" + name)(*args))

    def close(self) -> None:
        if self.loop is None:
            self.backend.close()
            return
        self.loop.run_until_complete(self.backend.aclose())
        self.loop.close()


class CacheMachine(RuleBasedStateMachine):
    """Every rule runs on both backends and compares; the invariant compares every key's entry."""

    def __init__(self, url: str, mode: str) -> None:
        super().__init__()
        self.url = url
        self.clock = FakeClock()
        self.prefix = f"buttress-test:stateful:{uuid.uuid4().hex}"
        self.redis = RedisBackend(url, prefix=self.prefix, clock=self.clock, metrics=MetricsRegistry())
        self.memory = Pair(MemoryBackend(clock=self.clock), mode)
        self.remote = Pair(self.redis, mode)

    def both(self, name: str, *args: Any) -> Any:
        expected = outcome(lambda: self.memory.call(name, *args))
        actual = outcome(lambda: self.remote.call(name, *args))
        assert actual == expected, f"{name}{args}: memory {expected}, redis {actual}"
        return expected[1]

    @rule(key=keys, entry=entries, ttl=ttls)
    def set(self, key: str, entry: Entry, ttl: float | None) -> None:
        self.both("set", key, entry, ttl)

    @rule(items=st.lists(st.tuples(keys, entries), max_size=4), ttl=ttls)
    def set_many(self, items: list[tuple[str, Entry]], ttl: float | None) -> None:
        self.both("set_many", items, ttl)

    @rule(key=keys)
    def get(self, key: str) -> None:
        expected = shape(self.memory.call("get", key))
        actual = shape(self.remote.call("get", key))
        assert actual == expected, f"get({key!r}): memory {expected}, redis {actual}"

    @rule(chosen=st.lists(keys, max_size=4))
    def get_many(self, chosen: list[str]) -> None:
        expected = [shape(entry) for entry in self.memory.call("get_many", chosen)]
        actual = [shape(entry) for entry in self.remote.call("get_many", chosen)]
        assert actual == expected, f"get_many({chosen!r}): memory {expected}, redis {actual}"

    @rule(chosen=st.lists(keys, max_size=4))
    def delete(self, chosen: list[str]) -> None:
        self.both("delete", chosen)

    @rule(key=keys)
    def exists(self, key: str) -> None:
        self.both("exists", key)

    @rule(key=keys, delta=st.integers(-SMALL, SMALL), ttl=ttls)
    def incr(self, key: str, delta: int, ttl: float | None) -> None:
        self.both("incr", key, delta, ttl)

    @rule(key=keys, ttl=ttls)
    def expire(self, key: str, ttl: float | None) -> None:
        self.both("expire", key, ttl)

    @rule(namespace=st.sampled_from(NAMESPACES))
    def clear(self, namespace: str) -> None:
        self.both("clear", namespace)

    @rule(chosen=st.lists(st.sampled_from(TAGS), max_size=3))
    def invalidate_tags(self, chosen: list[str]) -> None:
        self.both("invalidate_tags", chosen)

    @rule(seconds=st.floats(0, STEP))
    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)

    @invariant()
    def same_contents(self) -> None:
        """Every key holds the same entry; memory is read without dropping what it holds expired (a
        ``get`` would, and hide a later count of an expired entry)."""
        memory = self.memory.backend
        assert isinstance(memory, MemoryBackend)
        expected = [shape(memory.peek(key) if memory.exists(key) else None) for key in KEYS]
        actual = [shape(entry) for entry in self.remote.call("get_many", KEYS)]
        assert actual == expected, f"contents: memory {expected}, redis {actual}"

    @invariant()
    def redis_answered(self) -> None:
        """Every call reached Redis (an answer from the memory fallback would compare memory to memory)."""
        assert self.redis.available
        assert self.redis.degraded_calls.value == 0

    def teardown(self) -> None:
        self.memory.close()
        self.remote.close()
        client = redis.Redis.from_url(self.url)
        try:
            doomed = list(client.scan_iter(match=f"{self.prefix}:*", count=1000))
            if doomed:
                client.unlink(*doomed)
        finally:
            client.close()


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_memory_and_redis_backends_agree(redis_url: str, mode: str) -> None:
    run_state_machine_as_test(
        lambda: CacheMachine(redis_url, mode),
        settings=settings(
            max_examples=60,
            stateful_step_count=30,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )


@pytest.fixture
def pair(redis_url: str) -> Iterator[tuple[MemoryBackend, RedisBackend]]:
    clock = FakeClock()
    prefix = f"buttress-test:stateful:{uuid.uuid4().hex}"
    memory = MemoryBackend(clock=clock)
    remote = RedisBackend(redis_url, prefix=prefix, clock=clock, metrics=MetricsRegistry())
    yield memory, remote
    remote.delete([f"n:{name}" for name in ("max", "min", "tagged")])
    remote.close()


@pytest.mark.parametrize(
    ("start", "delta"),
    [(2**63 - 2, 1), (2**53, 1), (-(2**63) + 1, -1), (2**62, 2**62 - 1)],
)
def test_counters_agree_at_the_64_bit_edge(
    pair: tuple[MemoryBackend, RedisBackend], start: int, delta: int
) -> None:
    """Exact up to the signed 64-bit bounds, and one step past them a ValidationError on both."""
    memory, remote = pair
    for backend in (memory, remote):
        assert backend.incr("n:max", start, None) == start
        assert backend.incr("n:max", delta, None) == start + delta
        with pytest.raises(ValidationError, match="64-bit range") as caught:
            backend.incr("n:max", 2**63 - 1 if delta > 0 else -(2**63), None)
        assert caught.value.field == "key"
        assert backend.get("n:max") == Entry(start + delta)


@pytest.mark.parametrize("delta", [True, 2**63, -(2**63) - 1, 1.0])
def test_a_delta_outside_64_bits_is_refused_alike(
    pair: tuple[MemoryBackend, RedisBackend], delta: Any
) -> None:
    for backend in pair:
        with pytest.raises(ValidationError, match="delta") as caught:
            backend.incr("n:min", delta, None)
        assert caught.value.field == "delta"
        assert backend.get("n:min") is None

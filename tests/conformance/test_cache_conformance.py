"""One suite for the cache backends: memory, Redis and tiered (L1 memory + Redis) must store alike.

Every test runs six ways: three backends, each through its sync methods and through its async twins (run
on an event loop owned by the fixture, so the Redis clients live on one loop); the value round-trip
tests run each of those per serializer (json, msgpack, signed pickle; memory applies the rule). The
memory backend runs on a FakeClock; Redis TTLs cannot be faked, so the Redis-based backends use TTLs of
100 ms and a bounded poll for the key to go. Each test gets fresh namespaces and a fresh Redis key
prefix (never a FLUSHDB).
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import datetime as dt
import decimal
import enum
import math
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from buttress.cache._backend import NEVER, CacheBackend, Entry
from buttress.cache._memory import MemoryBackend
from buttress.cache._serializers import make_serializer
from buttress.cache._tiered import TieredBackend
from buttress.clock import FakeClock
from buttress.errors import ValidationError
from tests.cache._tiered_child import redis_bus

SHORT = 0.1  # seconds: a TTL Redis really waits out
POLL = 5.0  # upper bound for a Redis key to expire
SIGNING_KEY = "conformance-signing-key-0123456789"  # for the signed pickle serializer


def redis_backend_class() -> Any:
    """RedisBackend, or a skip while src/buttress/cache/_redis.py is being written."""
    try:
        from buttress.cache._redis import RedisBackend
    except ImportError as exc:
        pytest.skip(f"RedisBackend is not available yet (src/buttress/cache/_redis.py: {exc})")
    return RedisBackend


class Subject:
    """A backend under test, called sync or async through the same names, with its clock."""

    def __init__(
        self, kind: str, mode: str, backend: CacheBackend, clock: FakeClock, redis: CacheBackend | None
    ) -> None:
        self.kind = kind
        self.mode = mode
        self.backend = backend
        self.clock = clock
        self.redis = redis
        self.loop = asyncio.new_event_loop() if mode == "async" else None
        self.real_time = redis is not None

    def __getattr__(self, name: str) -> Callable[..., Any]:
        """``subject.get(...)``: ``backend.get(...)``, or ``backend.aget(...)`` run to completion."""
        if self.loop is None:
            method: Callable[..., Any] = getattr(self.backend, name)
            return method
        fallback = getattr(self.backend, "a" + name)
        loop = self.loop
        return lambda *args: loop.run_until_complete(fallback(*args))

    def elapse(self, seconds: float, gone: str) -> None:
        """Let ``seconds`` pass: in Redis (until its key ``gone`` has expired), then on the FakeClock.

        Redis first: a tiered L1 copy (on the FakeClock) must still be live when Redis drops the key,
        so the test sees that it too goes at the entry's TTL (and a read cannot refill it from Redis).
        """
        if self.redis is not None:
            deadline = time.monotonic() + POLL
            while self.redis.get(gone) is not None:  # Redis expires on its own time: poll, bounded
                assert time.monotonic() < deadline, f"{gone!r} outlived its TTL of {seconds}s by {POLL}s"
        self.clock.advance(seconds)

    def ttl(self, memory: float) -> float:
        """A TTL for this backend: ``memory`` on the FakeClock, SHORT where time is real."""
        return SHORT if self.real_time else memory

    def close(self) -> None:
        if self.loop is None:
            self.backend.close()
            return
        self.loop.run_until_complete(self.backend.aclose())
        self.loop.close()


@pytest.fixture(params=["memory", "redis", "tiered"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _subject(
    kind: str, mode: str, request: pytest.FixtureRequest, serializer: str | None
) -> Iterator[Subject]:
    """A backend of ``kind`` called ``mode``; with ``serializer``, every backend stores with it (the memory
    backend applies its round-trip rule), else each its default."""
    clock = FakeClock()
    closers: list[Callable[[], None]] = []
    backend: CacheBackend
    redis_backend: CacheBackend | None = None
    if kind == "memory":
        backend = MemoryBackend(clock=clock, serializer=serializer)
    else:
        url = request.getfixturevalue("redis_url")
        backend = redis_backend = redis_backend_class()(
            url,
            prefix=f"buttress-test:{uuid.uuid4().hex}",
            serializer=None if serializer is None else make_serializer(serializer, SIGNING_KEY),
        )
        if kind == "tiered":
            bus = redis_bus(url, f"buttress-test:{uuid.uuid4().hex}")
            closers.append(bus.close)
            backend = TieredBackend(redis_backend, bus=bus, clock=clock)
    subject = Subject(kind, mode, backend, clock, redis_backend)
    yield subject
    subject.close()
    for close in closers:
        close()


@pytest.fixture(params=["sync", "async"])
def subject(kind: str, request: pytest.FixtureRequest) -> Iterator[Subject]:
    yield from _subject(kind, str(request.param), request, None)


@pytest.fixture
def ns() -> str:
    """A namespace no other test uses."""
    return f"ns{uuid.uuid4().hex[:12]}"


def values(entries: list[Entry | None]) -> list[Any]:
    return [None if entry is None else entry.value for entry in entries]


# -- reading and writing ------------------------------------------------------------------------------------


def test_set_get_and_overwrite(subject: Subject, ns: str) -> None:
    subject.set(f"{ns}:k", Entry("one"), 60)
    entry = subject.get(f"{ns}:k")
    assert isinstance(entry, Entry)
    assert entry.value == "one"
    subject.set(f"{ns}:k", Entry({"two": 2}), 60)
    assert subject.get(f"{ns}:k").value == {"two": 2}


def test_a_missing_key_is_none(subject: Subject, ns: str) -> None:
    assert subject.get(f"{ns}:missing") is None
    assert not subject.exists(f"{ns}:missing")
    assert subject.get_many([f"{ns}:missing"]) == [None]


def test_an_entry_expires_at_its_ttl(subject: Subject, ns: str) -> None:
    ttl = subject.ttl(30.0)
    subject.set(f"{ns}:k", Entry("v"), ttl)
    if not subject.real_time:
        subject.clock.advance(ttl - 0.001)
    assert subject.get(f"{ns}:k").value == "v"
    assert subject.exists(f"{ns}:k")
    subject.elapse(ttl if subject.real_time else 0.001, gone=f"{ns}:k")
    assert subject.get(f"{ns}:k") is None
    assert not subject.exists(f"{ns}:k")


def test_ttl_none_keeps_an_entry_until_deleted(subject: Subject, ns: str) -> None:
    subject.set(f"{ns}:forever", Entry("kept"), None)
    subject.set(f"{ns}:brief", Entry("gone"), subject.ttl(30.0))
    subject.elapse(subject.ttl(365 * 86400.0), gone=f"{ns}:brief")
    assert subject.get(f"{ns}:forever").value == "kept"
    assert subject.delete([f"{ns}:forever"]) == 1
    assert subject.get(f"{ns}:forever") is None


def test_get_many_and_set_many_keep_order_and_report_missing(subject: Subject, ns: str) -> None:
    subject.set_many([(f"{ns}:a", Entry(1)), (f"{ns}:b", Entry("two")), (f"{ns}:c", Entry([3]))], 60)
    keys = [f"{ns}:c", f"{ns}:missing", f"{ns}:a", f"{ns}:b", f"{ns}:a"]
    assert values(subject.get_many(keys)) == [[3], None, 1, "two", 1]
    assert subject.get_many([]) == []
    subject.set_many([], 60)


def test_set_many_applies_the_ttl_to_every_key(subject: Subject, ns: str) -> None:
    ttl = subject.ttl(10.0)
    subject.set_many([(f"{ns}:a", Entry(1)), (f"{ns}:b", Entry(2))], ttl)
    subject.elapse(ttl, gone=f"{ns}:a")
    subject.elapse(0.0, gone=f"{ns}:b")
    assert subject.get_many([f"{ns}:a", f"{ns}:b"]) == [None, None]


def test_delete_counts_the_keys_that_existed(subject: Subject, ns: str) -> None:
    subject.set_many([(f"{ns}:a", Entry(1)), (f"{ns}:b", Entry(2))], 60)
    assert subject.delete([f"{ns}:a", f"{ns}:missing", f"{ns}:b"]) == 2
    assert subject.delete([f"{ns}:a"]) == 0
    assert subject.delete([]) == 0
    assert subject.get_many([f"{ns}:a", f"{ns}:b"]) == [None, None]


def test_exists_sees_entries_including_none_values(subject: Subject, ns: str) -> None:
    subject.set(f"{ns}:none", Entry(None), 60)
    assert subject.exists(f"{ns}:none")
    assert not subject.exists(f"{ns}:other")


# -- counters and TTL changes -------------------------------------------------------------------------------


def test_incr_creates_increments_and_refuses_non_integers(subject: Subject, ns: str) -> None:
    assert subject.incr(f"{ns}:n", 1, None) == 1
    assert subject.incr(f"{ns}:n", 41, None) == 42
    assert subject.incr(f"{ns}:n", -50, None) == -8
    assert subject.get(f"{ns}:n").value == -8
    subject.set(f"{ns}:set", Entry(5), 60)
    assert subject.incr(f"{ns}:set", 2, None) == 7
    subject.set(f"{ns}:text", Entry("five"), 60)
    with pytest.raises(ValidationError, match="cannot increment") as caught:
        subject.incr(f"{ns}:text", 1, None)
    assert caught.value.field == "key"
    assert subject.get(f"{ns}:text").value == "five"


def test_incr_ttl_applies_only_when_the_key_is_created(subject: Subject, ns: str) -> None:
    ttl = subject.ttl(10.0)
    assert subject.incr(f"{ns}:n", 1, ttl) == 1
    assert subject.incr(f"{ns}:n", 1, None) == 2  # does not make it permanent
    subject.set(f"{ns}:kept", Entry(1), None)
    assert subject.incr(f"{ns}:kept", 1, ttl) == 2  # does not give an existing key a TTL
    subject.elapse(ttl, gone=f"{ns}:n")
    assert subject.get(f"{ns}:n") is None
    assert subject.get(f"{ns}:kept").value == 2


def test_expire_changes_the_ttl_of_existing_keys_only(subject: Subject, ns: str) -> None:
    ttl = subject.ttl(5.0)
    subject.set(f"{ns}:short", Entry("s"), 3600)
    subject.set(f"{ns}:long", Entry("l"), ttl)
    assert subject.expire(f"{ns}:short", ttl)
    assert subject.expire(f"{ns}:long", None)
    assert not subject.expire(f"{ns}:missing", 60)
    subject.elapse(ttl, gone=f"{ns}:short")
    assert subject.get(f"{ns}:short") is None
    assert subject.get(f"{ns}:long").value == "l"
    assert not subject.expire(f"{ns}:short", 60)


# -- namespaces and tags ------------------------------------------------------------------------------------


def test_clear_removes_only_its_namespace(subject: Subject, ns: str) -> None:
    subject.set_many([(f"{ns}:a", Entry(1)), (f"{ns}:b:c", Entry(2))], 60)
    subject.set_many([(f"{ns}x:a", Entry(3)), (f"{ns}y:a", Entry(4))], 60)  # namespaces sharing a prefix
    assert subject.clear(ns) == 2
    assert subject.get_many([f"{ns}:a", f"{ns}:b:c"]) == [None, None]
    assert values(subject.get_many([f"{ns}x:a", f"{ns}y:a"])) == [3, 4]
    assert subject.clear(ns) == 0


def test_tags_invalidate_across_namespaces(subject: Subject, ns: str) -> None:
    other = f"{ns}other"
    subject.set(f"{ns}:a", Entry("a", tags=("artists",)), 60)
    subject.set(f"{other}:b", Entry("b", tags=("artists", "top")), 60)
    subject.set(f"{ns}:c", Entry("c", tags=("tracks",)), 60)
    subject.set(f"{ns}:d", Entry("d", tags=("artists",)), 60)
    subject.set(f"{ns}:d", Entry("d2", tags=("tracks",)), 60)  # a set replaces the tags
    assert subject.invalidate_tags([f"{ns}-unused"]) == 0
    assert subject.invalidate_tags(["artists"]) == 2
    assert values(subject.get_many([f"{ns}:a", f"{other}:b", f"{ns}:c", f"{ns}:d"])) == [
        None,
        None,
        "c",
        "d2",
    ]
    assert subject.invalidate_tags(["top", "tracks"]) == 2
    assert subject.get_many([f"{ns}:c", f"{ns}:d"]) == [None, None]


# -- what round-trips ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("fresh_until", [1_700_000_123.25, NEVER])
def test_fresh_until_and_tags_round_trip(subject: Subject, ns: str, fresh_until: float) -> None:
    subject.set(f"{ns}:k", Entry("v", fresh_until=fresh_until, tags=("a", "b")), 60)
    entry = subject.get(f"{ns}:k")
    assert (entry.value, entry.fresh_until, tuple(entry.tags)) == ("v", fresh_until, ("a", "b"))
    (many,) = subject.get_many([f"{ns}:k"])
    assert (many.fresh_until, tuple(many.tags)) == (fresh_until, ("a", "b"))


def test_none_and_nested_values_round_trip(subject: Subject, ns: str) -> None:
    nested = {"name": "Björk", "albums": [{"year": 1993, "tracks": ["Human Behaviour", None]}], "ok": True}
    subject.set_many([(f"{ns}:none", Entry(None)), (f"{ns}:nested", Entry(nested))], 60)
    none, found = subject.get_many([f"{ns}:none", f"{ns}:nested"])
    assert none is not None
    assert none.value is None
    assert found.value == nested
    assert subject.get(f"{ns}:empty") is None  # absent is not the same as a stored None


def test_unicode_keys(subject: Subject, ns: str) -> None:
    keys = [f"{ns}:ключ", f"{ns}:🔑 with spaces", f"{ns}:a*b?[c]"]
    subject.set_many([(key, Entry(i)) for i, key in enumerate(keys)], 60)
    assert values(subject.get_many(keys)) == [0, 1, 2]
    assert subject.get(f"{ns}:a") is None  # glob characters in a key match nothing else
    assert subject.delete([keys[1]]) == 1
    assert subject.clear(ns) == 2


# -- locks, reporting -------------------------------------------------------------------------------------


def test_locks_per_backend(subject: Subject, ns: str) -> None:
    key = f"{ns}:k"
    assert subject.acquire_lock(key, "one", 30.0)
    if subject.kind == "memory":  # one process: the Cache's single-flight is the lock
        assert subject.acquire_lock(key, "two", 30.0)
        subject.release_lock(key, "one")
        return
    assert not subject.acquire_lock(key, "two", 30.0)
    subject.release_lock(key, "two")  # not the holder: changes nothing
    assert not subject.acquire_lock(key, "two", 30.0)
    subject.release_lock(key, "one")
    assert subject.acquire_lock(key, "two", SHORT)
    deadline = time.monotonic() + POLL
    while not subject.acquire_lock(key, "three", 30.0):  # the lease runs out by itself
        assert time.monotonic() < deadline, "the lock lease did not expire"
    subject.release_lock(key, "three")


def test_info_and_check(subject: Subject, ns: str) -> None:
    subject.set(f"{ns}:k", Entry(1), 60)
    info = subject.backend.info()
    assert info.name == subject.kind == subject.backend.name
    assert info.available
    if subject.kind != "redis":  # entries held locally (memory, or L1)
        assert info.entries == 1
        assert info.sizes == {ns: 1}
    assert subject.backend.check().status == "pass"


# -- values round-trip alike, or are refused at set alike (per serializer, on every backend) -------------


class Level(enum.IntEnum):
    LOW = 1


@dataclasses.dataclass(frozen=True)
class Point:
    x: int
    y: int


NAN, INF = float("nan"), float("inf")
KEPT: dict[str, list[Any]] = {
    "json": ["s", "", 7, 2**70, -0.5, True, None, NAN, INF, [1, "a", None], {"a": [1, {"b": NAN}]}, {"": []}],
    "msgpack": ["s", 2**63, -(2**63), NAN, b"\x00raw", {1: "a"}, {b"k": [1, 2]}, {None: 0, True: 1}, [b"x"]],
    "pickle": [
        (1, 2),
        {1: "a"},
        {1, 2},
        frozenset({"x"}),
        b"x",
        2**70,
        dt.date(2024, 1, 2),
        Level.LOW,
        Point(1, 2),
        decimal.Decimal("1.10"),
        collections.OrderedDict(a=1),
        {"t": (1, [2, (3,)])},
    ],
}
"""Values each serializer returns unchanged (equal and of the same types, all the way down)."""
REFUSED: dict[str, list[Any]] = {
    "json": [
        {1: "a"},
        (1, 2),
        {"a": [1, (2, 3)]},
        {1, 2},
        frozenset(),
        b"x",
        {True: 1},
        {None: 1},
        Level.LOW,
        collections.OrderedDict(a=1),
        Point(1, 2),
        dt.date(2024, 1, 2),
        decimal.Decimal(1),
    ],
    "msgpack": [
        (1, 2),
        {"a": (1,)},
        {1, 2},
        2**64,
        Level.LOW,
        Point(1, 2),
        dt.date(2024, 1, 2),
        {(1, 2): "tuple key"},
        {2**64: "a key past 64 bits"},
    ],
    "pickle": [threading.Lock(), {"callback": lambda: None}],
}
"""Values each serializer would change or cannot carry: ``set`` raises ValidationError on every backend."""


def same(got: Any, expected: Any) -> bool:
    """Equal and of exactly the same types at every level (NaN equals NaN)."""
    if type(got) is not type(expected):
        return False
    if isinstance(expected, float) and math.isnan(expected):
        return math.isnan(got)
    if isinstance(expected, list | tuple):
        return len(got) == len(expected) and all(same(a, b) for a, b in zip(got, expected, strict=True))
    if isinstance(expected, dict):
        return list(got) == list(expected) and all(
            same(got_key, key) and same(got[key], value)
            for got_key, (key, value) in zip(got, expected.items(), strict=True)
        )
    return bool(got == expected)


@pytest.fixture(params=["json", "msgpack", "pickle"])
def serializer(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(params=["sync", "async"])
def typed(kind: str, serializer: str, request: pytest.FixtureRequest) -> Iterator[Subject]:
    """A backend of ``kind`` storing with ``serializer`` (the memory backend applies its round-trip rule)."""
    yield from _subject(kind, str(request.param), request, serializer)


def test_values_a_serializer_keeps_come_back_unchanged_everywhere(
    typed: Subject, serializer: str, ns: str
) -> None:
    cases = KEPT[serializer]
    keys = [f"{ns}:{i}" for i in range(len(cases))]
    for key, value in zip(keys, cases, strict=True):
        typed.set(key, Entry(value), 60)
    readers = [("this backend", typed.get)]
    if typed.redis is not None:  # another process reads Redis itself, not this process's L1
        readers.append(("Redis, as another process reads it", typed.redis.get))
    for where, get in readers:
        for key, value in zip(keys, cases, strict=True):
            got = get(key).value
            assert same(got, value), f"{serializer} on {typed.kind} ({where}): set {value!r}, got {got!r}"
    assert all(same(e.value, v) for e, v in zip(typed.get_many(keys), cases, strict=True))


def test_values_a_serializer_would_change_are_refused_at_set_everywhere(
    typed: Subject, serializer: str, ns: str
) -> None:
    for i, value in enumerate(REFUSED[serializer]):
        key = f"{ns}:{i}"
        with pytest.raises(ValidationError) as raised:
            typed.set(key, Entry(value), 60)
        assert raised.value.field == "value"
        with pytest.raises(ValidationError):
            typed.set_many([(f"{ns}:ok", Entry("fine")), (key, Entry(value))], 60)
        assert typed.get(key) is None, f"{value!r} was refused but stored on {typed.kind}"


def test_a_refusal_names_where_in_the_value_and_the_fix(typed: Subject, serializer: str, ns: str) -> None:
    if serializer == "pickle":
        pytest.skip("pickle keeps tuples and int keys")
    with pytest.raises(ValidationError) as raised:
        typed.set(f"{ns}:k", Entry({"albums": [{"tracks": ("a", "b")}]}), 60)
    message = str(raised.value)
    assert "value['albums'][0]['tracks']" in message
    assert "comes back as a list" in message
    assert "store a list" in message

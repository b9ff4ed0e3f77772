"""What is Redis-specific in the Redis cache backend: its value format in Redis, counters, tag sets, namespace
clears, the lease lock and rejected values. The behaviour every backend shares is the conformance suite's.

Real Redis (database 15), a unique key prefix per test; only that prefix's keys are read or removed.
"""

from __future__ import annotations

import sys
import time
import uuid
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import pytest
import redis

from buttress.cache import Cache
from buttress.cache._backend import NEVER, Entry
from buttress.cache._redis import RedisBackend
from buttress.cache._serializers import (
    JsonSerializer,
    MsgpackSerializer,
    Serializer,
    SignedPickleSerializer,
)
from buttress.errors import ValidationError
from buttress.observe.metrics import MetricsRegistry

SIGNING_KEY = "a-test-signing-key-of-32-bytes!!"

Factory = Callable[..., RedisBackend]


@pytest.fixture
def prefix() -> str:
    return f"test:{uuid.uuid4().hex}"


@pytest.fixture
def raw(redis_url: str, prefix: str) -> Iterator[redis.Redis]:
    """A plain client to look at what the backend wrote; removes the test's keys afterwards."""
    client = redis.Redis.from_url(redis_url)
    yield client
    keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
    if keys:
        client.unlink(*keys)
    client.close()


@pytest.fixture
def make(redis_url: str, prefix: str, raw: redis.Redis) -> Iterator[Factory]:
    made: list[RedisBackend] = []

    def factory(**options: Any) -> RedisBackend:
        options.setdefault("metrics", MetricsRegistry())
        backend = RedisBackend(redis_url, prefix=prefix, **options)
        made.append(backend)
        return backend

    yield factory
    for backend in made:
        backend.close()


@pytest.fixture
def backend(make: Factory) -> RedisBackend:
    return make()


def _wait_until(condition: Callable[[], object], seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.005)  # polling a real Redis lease, which no FakeClock can move


class Point:
    """Something only pickle carries."""

    def __init__(self, x: int, y: int) -> None:
        self.x, self.y = x, y

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Point) and (self.x, self.y) == (other.x, other.y)

    __hash__ = None  # type: ignore[assignment]


# -- the value format ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("serializer", "value"),
    [
        (JsonSerializer(), {"name": "Nina", "tracks": [1, 2.5, None, True], "é": "ü"}),
        (MsgpackSerializer(), {"blob": b"\x00\xff", "n": [1, -2, 3.5]}),
        (SignedPickleSerializer(SIGNING_KEY), {"point": Point(1, 2), "exact": Decimal("1.10")}),
    ],
    ids=["json", "msgpack", "pickle"],
)
def test_each_serializer_round_trips_value_freshness_and_tags(
    make: Factory, raw: redis.Redis, serializer: Serializer, value: Any
) -> None:
    backend = make(serializer=serializer)
    tags = ("artists", "a,b", "50%", "tab\there", "new\nline")
    backend.set("ns:k", Entry(value, 1_700_000_000.123456, tags), 60)

    assert backend.get("ns:k") == Entry(value, 1_700_000_000.123456, tags)
    stored = raw.get(backend.redis_key("ns:k"))
    assert isinstance(stored, bytes)
    head, _, payload = stored.partition(b"\n")
    assert head == b"1700000000.123456\tartists,a%2Cb,50%25,tab%09here,new%0Aline"
    assert serializer.loads(payload) == value  # the payload is the serializer's bytes, nothing more


def test_the_documented_format_in_redis(backend: RedisBackend, raw: redis.Redis) -> None:
    backend.set("ns:plain", Entry({"a": 1}), None)
    backend.set("ns:counter", Entry(7), None)
    backend.set("ns:fresh_int", Entry(7, 1_700_000_000.5, ("t",)), None)
    backend.set("ns:big_int", Entry(2**70), None)

    assert raw.get(backend.redis_key("ns:plain")) == b'\t\n{"a":1}'
    assert raw.get(backend.redis_key("ns:counter")) == b"7"
    assert raw.get(backend.redis_key("ns:fresh_int")) == b"#1700000000.5\tt\n7"
    assert raw.get(backend.redis_key("ns:big_int")) == b"\t\n" + str(2**70).encode()  # past INCRBY's range
    assert backend.get("ns:plain") == Entry({"a": 1})
    assert backend.get("ns:counter") == Entry(7)
    assert backend.get("ns:fresh_int") == Entry(7, 1_700_000_000.5, ("t",))
    assert backend.get("ns:big_int") == Entry(2**70)
    assert backend.get("ns:bool") is None
    backend.set("ns:bool", Entry(value=True), None)
    assert backend.get("ns:bool") == Entry(value=True)  # a bool is not stored as the integer 1


def test_ttls_are_milliseconds_in_redis_and_none_persists(backend: RedisBackend, raw: redis.Redis) -> None:
    backend.set("ns:a", Entry("x"), 1.5)
    backend.set("ns:b", Entry("x"), None)
    backend.set_many([("ns:c", Entry("c")), ("ns:d", Entry("d", tags=("t",)))], 0.25)
    backend.set("ns:gone", Entry("x"), 0)

    assert 1400 < raw.pttl(backend.redis_key("ns:a")) <= 1500
    assert raw.pttl(backend.redis_key("ns:b")) == -1
    assert 150 < raw.pttl(backend.redis_key("ns:c")) <= 250
    assert 150 < raw.pttl(backend.redis_key("ns:d")) <= 250
    assert not raw.exists(backend.redis_key("ns:gone"))  # a TTL of 0 is already expired
    assert backend.expire("ns:a", None) is True
    assert raw.pttl(backend.redis_key("ns:a")) == -1
    assert backend.expire("ns:b", 2) is True
    assert 1900 < raw.pttl(backend.redis_key("ns:b")) <= 2000
    assert backend.expire("ns:missing", 2) is False
    assert backend.expire("ns:missing", None) is False


# -- counters -------------------------------------------------------------------------------------------


def test_counters_are_plain_integers_with_a_ttl_set_only_on_creation(
    backend: RedisBackend, raw: redis.Redis
) -> None:
    assert backend.incr("ns:hits", 5, 10) == 5
    assert raw.get(backend.redis_key("ns:hits")) == b"5"
    assert 9000 < raw.pttl(backend.redis_key("ns:hits")) <= 10_000
    raw.pexpire(backend.redis_key("ns:hits"), 60_000)
    assert backend.incr("ns:hits", -2, 10) == 3
    assert raw.pttl(backend.redis_key("ns:hits")) > 50_000  # the second incr did not reset the TTL
    assert raw.incrby(backend.redis_key("ns:hits"), 10) == 13  # other Redis clients can count too
    assert backend.get("ns:hits") == Entry(13)
    assert backend.incr("ns:forever", 1, None) == 1
    assert raw.pttl(backend.redis_key("ns:forever")) == -1


def test_incr_adds_to_an_integer_set_with_freshness_and_tags(backend: RedisBackend, raw: redis.Redis) -> None:
    backend.set("ns:n", Entry(41, 1_700_000_000.0, ("t",)), 30)

    assert backend.incr("ns:n", 1, None) == 42
    assert backend.get("ns:n") == Entry(42, 1_700_000_000.0, ("t",))
    assert 29_000 < raw.pttl(backend.redis_key("ns:n")) <= 30_000  # kept, as the memory backend keeps it
    assert backend.invalidate_tags(["t"]) == 1


def test_incr_refuses_a_non_integer_naming_the_key(backend: RedisBackend) -> None:
    backend.set("ns:text", Entry("hello"), None)
    backend.set("ns:huge", Entry(2**53 - 1, 5.0), None)

    with pytest.raises(ValidationError, match=r"'ns:text'.*does not hold an integer"):
        backend.incr("ns:text", 1, None)
    with pytest.raises(ValidationError, match=r"'ns:huge'.*64-bit range"):
        backend.incr("ns:huge", 1, None)
    with pytest.raises(ValidationError, match="delta"):
        backend.incr("ns:n", 2**64, None)
    assert backend.get("ns:text") == Entry("hello")


async def test_async_counters_and_errors(backend: RedisBackend) -> None:
    try:
        assert await backend.aincr("ns:c", 2, None) == 2
        assert await backend.aincr("ns:c", 3, None) == 5
        await backend.aset("ns:s", Entry("x"), None)
        with pytest.raises(ValidationError, match="'ns:s'"):
            await backend.aincr("ns:s", 1, None)
    finally:
        await backend.aclose()


# -- tags -------------------------------------------------------------------------------------------------


def test_tag_sets_live_at_least_as_long_as_their_members(backend: RedisBackend, raw: redis.Redis) -> None:
    tag_key = f"{backend.prefix}:~tag:artists"
    backend.set("ns:short", Entry(1, tags=("artists",)), 10)
    assert 9000 < raw.pttl(tag_key) <= 10_000
    backend.set("ns:long", Entry(2, tags=("artists",)), 100)
    assert 99_000 < raw.pttl(tag_key) <= 100_000
    backend.set("ns:shorter", Entry(3, tags=("artists",)), 1)
    assert raw.pttl(tag_key) > 99_000  # never shortened
    backend.set("ns:forever", Entry(4, tags=("artists",)), None)
    assert raw.pttl(tag_key) == -1
    backend.set("ns:again", Entry(5, tags=("artists",)), 5)
    assert raw.pttl(tag_key) == -1  # a member that never expires keeps the set forever
    assert backend.expire("ns:again", None)

    other_tag = f"{backend.prefix}:~tag:labels"
    backend.set("ns:l", Entry(6, tags=("labels",)), 1)
    assert backend.expire("ns:l", 500) is True
    assert raw.pttl(other_tag) > 499_000  # expire() extends the member's tag sets too


def test_invalidate_removes_tagged_values_in_every_namespace_and_the_tag_set(
    backend: RedisBackend, raw: redis.Redis
) -> None:
    backend.set("a:1", Entry(1, tags=("x",)), 60)
    backend.set("b:2", Entry(2, tags=("x", "y")), None)
    backend.set("b:3", Entry(3, tags=("y",)), 60)
    backend.set("b:4", Entry(4), 60)

    assert backend.invalidate_tags(["x", "y"]) == 3
    assert [backend.get(k) for k in ("a:1", "b:2", "b:3")] == [None, None, None]
    assert backend.get("b:4") == Entry(4)
    assert not raw.exists(f"{backend.prefix}:~tag:x", f"{backend.prefix}:~tag:y")
    assert backend.invalidate_tags(["x"]) == 0
    assert backend.invalidate_tags([]) == 0


def test_a_value_re_set_without_its_tag_survives_that_tags_invalidation(backend: RedisBackend) -> None:
    backend.set("ns:k", Entry("old", tags=("artists",)), 60)
    backend.set("ns:k", Entry("new", tags=("labels",)), 60)  # the artists set still names ns:k
    backend.delete(["ns:gone"])
    backend.set("ns:gone", Entry("g", tags=("artists",)), 60)
    backend.delete(["ns:gone"])
    backend.incr("ns:gone", 1, None)  # now a counter, with no tags

    assert backend.invalidate_tags(["artists"]) == 0
    assert backend.get("ns:k") == Entry("new", tags=("labels",))
    assert backend.get("ns:gone") == Entry(1)
    assert backend.invalidate_tags(["labels"]) == 1


# -- namespaces ---------------------------------------------------------------------------------------------


def test_clear_removes_one_namespace_and_nothing_else(backend: RedisBackend, raw: redis.Redis) -> None:
    backend.set_many([(f"users:{i}", Entry(i, tags=("t",))) for i in range(2500)], 60)
    backend.set("users2:x", Entry("other namespace"), 60)
    backend.set("use*:x", Entry("a glob-looking namespace"), 60)
    assert backend.acquire_lock("users:1", "token", 30)

    assert backend.clear("use*") == 1  # the '*' is literal, not a pattern
    assert backend.get("users:1") == Entry(1, tags=("t",))
    assert backend.clear("users") == 2500
    assert backend.get("users:1") is None
    assert backend.get("users2:x") == Entry("other namespace")
    assert raw.exists(f"{backend.prefix}:~lock:users:1")  # locks and tag sets are not in a namespace
    assert raw.exists(f"{backend.prefix}:~tag:t")
    assert backend.clear("users") == 0


async def test_async_clear_and_get_many(backend: RedisBackend) -> None:
    try:
        await backend.aset_many([(f"ns:{i}", Entry(i)) for i in range(30)], 60)
        await backend.aset("keep:1", Entry("k"), 60)
        assert await backend.aget_many(["ns:0", "ns:29", "ns:30"]) == [Entry(0), Entry(29), None]
        assert await backend.aclear("ns") == 30
        assert await backend.aget_many(["ns:0", "keep:1"]) == [None, Entry("k")]
        assert await backend.aexists("keep:1")
        assert await backend.adelete(["keep:1", "nope:2"]) == 1
    finally:
        await backend.aclose()


# -- the lease lock -----------------------------------------------------------------------------------------


def test_the_lock_is_exclusive_until_released_by_its_holder(make: Factory) -> None:
    one, other = make(), make()  # two backends: as two processes would hold them

    assert one.acquire_lock("ns:k", "token-1", 30)
    assert not other.acquire_lock("ns:k", "token-2", 30)
    other.release_lock("ns:k", "token-2")  # not the holder: nothing happens
    assert not other.acquire_lock("ns:k", "token-2", 30)
    one.release_lock("ns:k", "token-1")
    assert other.acquire_lock("ns:k", "token-2", 30)
    assert one.acquire_lock("ns:other", "token-1", 30)  # locks are per key


def test_a_lock_whose_holder_vanished_frees_itself_after_the_lease(make: Factory) -> None:
    one, other = make(), make()
    assert one.acquire_lock("ns:k", "dead-holder", 0.05)
    assert not other.acquire_lock("ns:k", "waiter", 30)
    started = time.monotonic()

    _wait_until(lambda: other.acquire_lock("ns:k", "waiter", 30))

    assert time.monotonic() - started < 1.0
    one.release_lock("ns:k", "dead-holder")  # too late: the waiter's lock stays
    assert not one.acquire_lock("ns:k", "third", 30)


async def test_async_lock(make: Factory) -> None:
    one, other = make(), make()
    try:
        assert await one.aacquire_lock("ns:k", "a", 30)
        assert not await other.aacquire_lock("ns:k", "b", 30)
        await one.arelease_lock("ns:k", "a")
        assert await other.aacquire_lock("ns:k", "b", 30)
    finally:
        await one.aclose()
        await other.aclose()


# -- values that do not decode ------------------------------------------------------------------------------


def test_a_tampered_signed_pickle_is_a_miss_deleted_and_counted(make: Factory, raw: redis.Redis) -> None:
    metrics = MetricsRegistry()
    backend = make(serializer=SignedPickleSerializer(SIGNING_KEY), metrics=metrics)
    backend.set("ns:p", Entry(Point(1, 2)), 60)
    stored = raw.get(backend.redis_key("ns:p"))
    assert isinstance(stored, bytes)
    raw.set(backend.redis_key("ns:p"), stored[:-1] + bytes([stored[-1] ^ 1]))  # one bit of the pickle

    assert backend.get("ns:p") is None
    assert not raw.exists(backend.redis_key("ns:p"))
    assert backend.rejected.value == 1
    rendered = metrics.render_prometheus().decode()
    assert f'buttress_cache_rejected_total{{backend="{backend.url}"}} 1.0' in rendered


def test_a_value_signed_with_another_key_or_foreign_bytes_is_a_miss(make: Factory, raw: redis.Redis) -> None:
    writer = make(serializer=SignedPickleSerializer("another-signing-key-32-bytes-long"))
    reader = make(serializer=SignedPickleSerializer(SIGNING_KEY))
    writer.set("ns:a", Entry([1, 2]), 60)
    raw.set(reader.redis_key("ns:b"), b"written by someone else")
    raw.set(reader.redis_key("ns:c"), b"not-a-number\t\n")
    reader.set("ns:ok", Entry("fine"), 60)

    assert reader.get_many(["ns:a", "ns:b", "ns:ok", "ns:c"]) == [None, None, Entry("fine"), None]
    assert reader.rejected.value == 3
    assert raw.exists(reader.redis_key("ns:a"), reader.redis_key("ns:b"), reader.redis_key("ns:c")) == 0


def test_a_key_of_another_type_under_the_prefix_is_a_miss(backend: RedisBackend, raw: redis.Redis) -> None:
    raw.hset(backend.redis_key("ns:h"), "field", "value")
    raw.sadd(backend.redis_key("ns:s"), "member")

    assert backend.get("ns:h") is None
    assert backend.get_many(["ns:s"]) == [None]  # MGET reads it as absent
    assert backend.exists("ns:s")
    assert backend.rejected.value == 1
    assert not raw.exists(backend.redis_key("ns:h"))
    with pytest.raises(ValidationError, match="'ns:s'"):
        backend.incr("ns:s", 1, None)
    assert backend.expire("ns:s", 10) is True


async def test_async_rejects_a_tampered_value(make: Factory, raw: redis.Redis) -> None:
    backend = make(serializer=SignedPickleSerializer(SIGNING_KEY))
    try:
        await backend.aset("ns:p", Entry("v"), 60)
        raw.set(backend.redis_key("ns:p"), b"\t\n" + b"0" * 40)
        raw.rpush(backend.redis_key("ns:list"), "x")
        assert await backend.aget("ns:p") is None
        assert await backend.aget("ns:list") is None
        assert not raw.exists(backend.redis_key("ns:p"), backend.redis_key("ns:list"))
        assert backend.rejected.value == 2
    finally:
        await backend.aclose()


# -- construction -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"url": "http://127.0.0.1:6379"}, "url"),
        ({"url": "redis://127.0.0.1:port/0"}, "url"),
        ({"prefix": ""}, "prefix"),
        ({"prefix": "my cache"}, "prefix"),
        ({"serializer": "json"}, "serializer"),
        ({"socket_timeout": 0}, "socket_timeout"),
        ({"max_connections": 0}, "max_connections"),
        ({"reconnect_min": 0}, "reconnect_min"),
        ({"reconnect_min": 2.0, "reconnect_max": 1.0}, "reconnect_max"),
        ({"fallback": {}}, "fallback"),
    ],
)
def test_bad_options_name_the_field(options: dict[str, Any], field: str) -> None:
    url = options.pop("url", "redis://127.0.0.1:6379/15")
    with pytest.raises(ValidationError) as caught:
        RedisBackend(url, metrics=MetricsRegistry(), **options)
    assert caught.value.field == field


def test_the_password_never_shows(redis_url: str) -> None:
    with pytest.raises(ValidationError) as caught:
        RedisBackend("http://user:hunter2@example.com", metrics=MetricsRegistry())
    assert "hunter2" not in str(caught.value)
    backend = RedisBackend("redis://user:hunter2@127.0.0.1:1/0", metrics=MetricsRegistry())
    try:
        assert "hunter2" not in repr(backend)
        assert "hunter2" not in backend.info().detail
        assert "hunter2" not in backend.check().output
        backend.get("ns:k")  # unreachable: the outage message names the URL too
        assert "hunter2" not in backend.info().detail
        assert "hunter2" not in backend.check().output
    finally:
        backend.close()


def test_info_and_check_while_redis_answers(backend: RedisBackend) -> None:
    backend.set("ns:k", Entry(1), 60)
    info = backend.info()
    assert (info.name, info.available, info.detail, info.entries) == ("redis", True, backend.url, 0)
    assert backend.check().status == "pass"
    assert backend.available
    assert backend.degraded_calls.value == 0
    assert backend.get("ns:k") == Entry(1, NEVER)


def test_a_hit_runs_few_python_frames_between_round_trips(make: Factory) -> None:
    """Issue 13: on a Redis hit each Python frame costs about twice its own time (the next round trip waits
    for it), so `Cache.get` keeps the frames outside redis-py few: its own, the backend's get, the Redis
    layer's call, its pool's get and release, the decode and the serializer's read."""
    cache = Cache(make())
    cache.set("k", {"id": 42, "genres": ["jazz"]})
    assert cache.get("k") == {"id": 42, "genres": ["jazz"]}  # connected, so the count is a hit's alone
    frames: list[str] = []

    def profile(frame: Any, event: str, _arg: object) -> None:
        if event == "call" and "/redis/" not in frame.f_code.co_filename:
            frames.append(f"{frame.f_code.co_filename.rsplit('/', 2)[-1]}:{frame.f_code.co_name}")

    sys.setprofile(profile)
    try:
        value = cache.get("k")
    finally:
        sys.setprofile(None)
    assert value == {"id": 42, "genres": ["jazz"]}
    assert len(frames) <= 7, frames

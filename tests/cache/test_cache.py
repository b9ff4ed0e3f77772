"""The Cache API over the memory backend: values, TTLs, namespaces, tags, counters, bad input."""

from __future__ import annotations

import pytest

from buttress.cache import NEVER, Cache, MemoryBackend
from buttress.clock import FakeClock
from buttress.errors import ValidationError


def test_set_get_and_default(cache: Cache) -> None:
    assert cache.get("missing") is None
    assert cache.get("missing", default="d") == "d"
    cache.set("user:1", {"name": "Ada", "tags": ["x"]})
    assert cache.get("user:1") == {"name": "Ada", "tags": ["x"]}
    cache.set("none", None)
    assert cache.get("none", default="d") is None  # a cached None is a hit, not the default


def test_default_ttl_and_per_key_ttl(cache: Cache, clock: FakeClock) -> None:
    cache.set("short", 1, ttl=5)
    cache.set("default", 2)
    cache.set("forever", 3, ttl=None)
    clock.advance(5)
    assert cache.get("short") is None
    assert cache.get("default") == 2
    clock.advance(55)
    assert cache.get("default") is None
    clock.advance(10**6)
    assert cache.get("forever") == 3


def test_exists_delete_and_counts(cache: Cache) -> None:
    cache.set("a", 1)
    cache.set("b", 2)
    assert cache.exists("a")
    assert cache.delete("a", "b", "c") == 2
    assert not cache.exists("a")


def test_namespaces_are_separate_and_clear_only_their_own(cache: Cache) -> None:
    artists = cache.namespaced("artists")
    assert cache.namespaced("artists") is artists
    cache.set("1", "default one")
    artists.set("1", "artist one")
    assert cache.get("1") == "default one"
    assert artists.get("1") == "artist one"
    assert artists.clear() == 1
    assert artists.get("1") is None
    assert cache.get("1") == "default one"
    assert artists.backend is cache.backend


def test_get_many_and_set_many(cache: Cache, clock: FakeClock) -> None:
    cache.set_many({"a": 1, "b": 2}, ttl=10)
    cache.set("c", 3, ttl=100)
    assert cache.get_many(["a", "x", "c", "b"]) == {"a": 1, "c": 3, "b": 2}
    clock.advance(10)
    assert cache.get_many(["a", "b", "c"]) == {"c": 3}


def test_incr_and_expire(cache: Cache, clock: FakeClock) -> None:
    assert cache.incr("hits") == 1
    assert cache.incr("hits", 5) == 6
    assert cache.get("hits") == 6
    assert cache.expire("hits", 10)
    clock.advance(10)
    assert cache.get("hits") is None
    cache.set("v", "x", ttl=5)
    assert cache.expire("v", 100)  # a new lifetime from now
    clock.advance(50)
    assert cache.get("v") == "x"
    assert not cache.expire("nothing", 5)
    cache.set("text", "abc")
    with pytest.raises(ValidationError, match="not an integer"):
        cache.incr("text")


def test_tags_invalidate_across_namespaces(cache: Cache) -> None:
    cache.set("a", 1, tags="artists")
    cache.namespaced("other").set("b", 2, tags=("artists", "x"))
    cache.set("c", 3, tags="albums")
    assert cache.invalidate_tags("artists") == 2
    assert cache.get("a") is None
    assert cache.namespaced("other").get("b") is None
    assert cache.get("c") == 3


def test_get_or_set_computes_once_then_hits(cache: Cache) -> None:
    calls: list[int] = []

    def load() -> int:
        calls.append(1)
        return 42

    assert cache.get_or_set("k", load) == 42
    assert cache.get_or_set("k", load) == 42
    assert calls == [1]


def test_get_or_set_unless_skips_storing(cache: Cache) -> None:
    assert cache.get_or_set("k", lambda: None, unless=lambda value: value is None) is None
    assert not cache.exists("k")


def test_factory_errors_propagate_and_are_not_cached(cache: Cache) -> None:
    def boom() -> int:
        raise RuntimeError("upstream down")

    with pytest.raises(RuntimeError, match="upstream down"):
        cache.get_or_set("k", boom)
    assert cache.get_or_set("k", lambda: 7) == 7


def test_stats_count_hits_misses_and_sets(cache: Cache) -> None:
    cache.get("a")
    cache.set("a", 1)
    cache.get("a")
    cache.get("a")
    stats = cache.stats_recorder.namespace("default")
    assert (stats.hits.value, stats.misses, stats.sets.value) == (2, 1, 1)


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda c: c.set("k", 1, ttl=0), "ttl"),
        (lambda c: c.set("k", 1, ttl=-1), "ttl"),
        (lambda c: c.set("k", 1, ttl="60"), "ttl"),
        (lambda c: c.set("k", 1, tags=("",)), "tags"),
        (lambda c: c.get(42), "key"),
        (lambda c: c.namespaced("a:b"), "namespace"),
        (lambda c: c.namespaced("~tag"), "namespace"),
        (lambda c: c.incr("k", 1.5), "delta"),
        (lambda c: c.get_or_set("k", lambda: 1, stale_ttl=-1), "stale_ttl"),
        (lambda c: c.get_or_set("k", lambda: 1, unless=3), "unless"),
    ],
)
def test_bad_input_names_the_field(cache: Cache, call: object, field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        call(cache)  # type: ignore[operator]
    assert caught.value.context["field"] == field


def test_constructor_checks() -> None:
    with pytest.raises(ValidationError, match="lock_lease"):
        Cache(lock_lease=0)
    with pytest.raises(ValidationError, match="namespace"):
        Cache(namespace="")
    with pytest.raises(ValidationError, match="max_entries"):
        MemoryBackend(max_entries=0)


async def test_async_twins(clock: FakeClock) -> None:
    cache = Cache(clock=clock, ttl=60)
    await cache.aset("a", [1, 2])
    assert await cache.aget("a") == [1, 2]
    assert await cache.aexists("a")
    await cache.aset_many({"b": 1, "c": 2}, tags="t")
    assert await cache.aget_many(["b", "c", "z"]) == {"b": 1, "c": 2}
    assert await cache.aincr("n", 2) == 2
    assert await cache.aexpire("a", 5)
    clock.advance(5)
    assert await cache.aget("a") is None
    assert await cache.ainvalidate_tags("t") == 2
    assert await cache.adelete("n") == 1
    calls: list[int] = []

    async def load() -> str:
        calls.append(1)
        return "v"

    assert await cache.aget_or_set("k", load) == "v"
    assert await cache.aget_or_set("k", load) == "v"
    assert calls == [1]
    assert await cache.aclear() == 1
    await cache.aclose()


def test_never_constant_and_repr(cache: Cache) -> None:
    cache.set("k", 1, ttl=None)
    assert cache.backend.get("default:k").fresh_until == NEVER  # type: ignore[union-attr]
    assert "memory" in repr(cache)

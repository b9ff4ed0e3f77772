"""@cached: sync, async, methods, key builders, invalidation, namespaces, policy options."""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import uuid

import pytest

from buttress.cache import Cache, CachedFunction, MemoryBackend, cached, get_cache, set_cache
from buttress.cache._keys import encode_arguments
from buttress.clock import FakeClock
from buttress.container import get_container, reset_container
from buttress.errors import ValidationError


def test_sync_function_is_computed_once_per_arguments(cache: Cache) -> None:
    calls: list[tuple[int, int]] = []

    @cache.cached()
    def add(a: int, b: int = 0) -> int:
        calls.append((a, b))
        return a + b

    assert add(1, 2) == 3
    assert add(1, 2) == 3
    assert add(2, 1) == 3
    assert calls == [(1, 2), (2, 1)]
    assert add.__name__ == "add"
    assert add.__wrapped__(5, 5) == 10  # type: ignore[attr-defined]


def test_default_key_is_typed(cache: Cache) -> None:
    seen: list[object] = []

    @cache.cached()
    def echo(value: object) -> str:
        seen.append(value)
        return type(value).__name__

    results = [echo(value) for value in (1, 1.0, True, "1", None)]
    assert results == ["int", "float", "bool", "str", "NoneType"]
    assert len(seen) == 5
    keys = {echo.cache_key(value) for value in (1, 1.0, True, "1", None, (1,), b"1")}
    assert len(keys) == 7


def test_keys_are_stable_text(cache: Cache) -> None:
    @cache.cached()
    def fn(a: object, b: object = None) -> None:
        return None

    assert fn.cache_key(42) == f"{__name__}.test_keys_are_stable_text.<locals>.fn:42"
    assert fn.cache_key("a", b=[1, {"x": 2}]).endswith(":('a',){'b':[1,{'x':2}]}")
    assert encode_arguments(("x" * 200,), {}).startswith("#")  # long keys are hashed


class Color(enum.Enum):
    RED = "red"


@dataclasses.dataclass
class Point:
    x: int
    y: int


def test_canonical_encoding_of_rich_arguments() -> None:
    day = dt.date(2026, 1, 2)
    ident = uuid.UUID(int=5)
    text = encode_arguments((Color.RED, Point(1, 2), day, ident, {3, 1}, frozenset({"b"})), {})
    for part in ("Color.RED", "Point{", "date(2026-01-02)", str(ident)):
        assert part in text
    assert encode_arguments(({"b": 1, "a": 2},), {}) == encode_arguments(({"a": 2, "b": 1},), {})


def test_arguments_without_a_stable_key_are_refused(cache: Cache) -> None:
    @cache.cached()
    def fn(obj: object) -> int:
        return 1

    with pytest.raises(ValidationError, match="no stable cache key") as caught:
        fn(object())
    assert caught.value.context["field"] == "key"


def test_template_keys_and_invalidate(cache: Cache) -> None:
    calls: list[str] = []

    @cache.cached(key="artist:{artist_id}:{market}")
    def artist(artist_id: str, market: str = "US") -> str:
        calls.append(artist_id)
        return artist_id.upper()

    assert artist("abc") == "ABC"
    assert artist(artist_id="abc") == "ABC"  # same key, bound by name, default applied
    assert calls == ["abc"]
    assert artist.cache_key("abc") == "artist:abc:US"
    assert cache.get("artist:abc:US") == "ABC"
    assert artist.invalidate("abc")
    assert not artist.invalidate("abc")
    assert artist("abc") == "ABC"
    assert calls == ["abc", "abc"]


def test_template_naming_an_unknown_parameter_fails_at_decoration(cache: Cache) -> None:
    with pytest.raises(ValidationError, match="artistid") as caught:

        @cache.cached(key="artist:{artistid}")
        def artist(artist_id: str) -> str:
            return artist_id

    assert "artist_id" in caught.value.message


def test_callable_keys(cache: Cache) -> None:
    @cache.cached(key=lambda user, page=1: f"u{user}p{page}")
    def feed(user: int, page: int = 1) -> list[int]:
        return [user, page]

    assert feed(3, page=2) == [3, 2]
    assert cache.get("u3p2") == [3, 2]

    @cache.cached(key=lambda user: user)
    def bad(user: int) -> int:
        return user

    with pytest.raises(ValidationError, match="not a str"):
        bad(1)


def test_methods_exclude_self(cache: Cache) -> None:
    calls: list[int] = []

    class Repo:
        def __init__(self, name: str) -> None:
            self.name = name

        @cache.cached(ttl=10)
        def get(self, item: int) -> int:
            calls.append(item)
            return item * 10

    first, second = Repo("a"), Repo("b")
    assert first.get(1) == 10
    assert second.get(1) == 10  # another instance, same key: self is not part of it
    assert calls == [1]
    assert Repo.get.cache_key(1).endswith("Repo.get:1")
    assert first.get.invalidate(1)  # type: ignore[attr-defined]
    assert first.get(1) == 10
    assert calls == [1, 1]


def test_namespace_tags_ttl_and_unless(cache: Cache, clock: FakeClock) -> None:
    calls: list[str] = []

    @cache.cached(ttl=5, namespace="tracks", tags=("music",), unless=lambda result: result == "")
    def track(track_id: str) -> str:
        calls.append(track_id)
        return "" if track_id == "none" else track_id

    track("a")
    track("none")
    track("none")
    assert calls == ["a", "none", "none"]  # the empty result was not cached
    assert cache.namespaced("tracks").exists(track.cache_key("a"))
    assert cache.namespaced("tracks").clear() == 1
    track("a")
    clock.advance(5)
    track("a")
    assert calls.count("a") == 3
    assert cache.invalidate_tags("music") == 1


def test_bad_policy_fails_at_decoration(cache: Cache) -> None:
    with pytest.raises(ValidationError, match="ttl"):
        cache.cached(ttl=-5)
    with pytest.raises(ValidationError, match="namespace"):
        cache.cached(namespace="a b")
    with pytest.raises(ValidationError, match="key must be"):

        @cache.cached(key=42)  # type: ignore[arg-type]
        def fn() -> None:
            return None


async def test_async_function_and_invalidate(cache: Cache) -> None:
    calls: list[int] = []

    @cache.cached(key="sq:{n}")
    async def square(n: int) -> int:
        calls.append(n)
        return n * n

    assert await square(3) == 9
    assert await square(3) == 9
    assert calls == [3]
    assert await square.ainvalidate(3)
    assert await square(3) == 9
    assert calls == [3, 3]


async def test_async_on_a_non_memory_backend_uses_aget(clock: FakeClock) -> None:
    from buttress.cache import MemoryBackend

    class Wrapped(MemoryBackend):
        """A real backend that is not MemoryBackend itself for the decorator's fast-path check."""

    cache = Cache(Wrapped(clock=clock), clock=clock)

    @cache.cached()
    async def double(n: int) -> int:
        return n * 2

    assert await double(2) == 4
    assert await double(2) == 4
    assert cache.stats_recorder.namespace("default").hits.value == 1


def _module_level_ident() -> tuple[CachedFunction[[int], int], list[int]]:
    """A function under the module-level ``@cached``, and the log of its calls."""
    calls: list[int] = []

    @cached(ttl=30)
    def ident(n: int) -> int:
        calls.append(n)
        return n

    return ident, calls


def test_module_level_cached_follows_set_cache_overrides_and_container_resets(clock: FakeClock) -> None:
    """It keeps what get_cache() answered, and asks again after any container change."""
    first, second, overridden = Cache(clock=clock), Cache(clock=clock), Cache(clock=clock)
    ident, calls = _module_level_ident()
    previous = set_cache(first)
    try:
        ident(1)
        ident(1)
        assert calls == [1]
        set_cache(second)
        ident(1)  # second's: a miss
        with get_container().override(Cache, overridden):
            ident(1)  # the override's cache: a miss
            ident(1)
        ident(1)  # back to second: a hit
        assert calls == [1, 1, 1]
        assert all(cache.exists(ident.cache_key(1)) for cache in (first, second, overridden))
        reset_container()  # closes second; get_cache() builds a new one from settings
        ident(1)
        assert calls == [1, 1, 1, 1]
        assert get_cache().exists(ident.cache_key(1))
    finally:
        set_cache(previous)


async def test_module_level_cached_async(clock: FakeClock) -> None:
    cache = Cache(clock=clock)

    @cached(ttl=30, namespace="m")
    async def ident(n: int) -> int:
        return n

    previous = set_cache(cache)
    try:
        assert await ident(4) == 4
        assert await ident(4) == 4
        assert cache.stats_recorder.namespace("m").hits.value == 1
    finally:
        set_cache(previous)


def test_cache_key_is_the_key_cache_get_and_delete_take(cache: Cache) -> None:
    @cache.cached(key="horoscope:{sign}")
    def horoscope(sign: str) -> str:
        return f"stars for {sign}"

    @cache.cached(namespace="charts")
    def chart(country: str) -> list[str]:
        return [country]

    horoscope("leo")
    chart("SE")
    key = horoscope.cache_key("leo")
    assert key == "horoscope:leo"
    assert cache.get(key) == "stars for leo"
    assert cache.delete(key) == 1
    charts = cache.namespaced("charts")
    assert charts.get(chart.cache_key("SE")) == ["SE"]  # with namespace=: that namespace's cache
    assert charts.delete(chart.cache_key("SE")) == 1


def test_a_self_referencing_argument_is_a_validation_error_not_a_recursion_error(cache: Cache) -> None:
    @cache.cached()
    def size(items: list[object]) -> int:
        return len(items)

    looped: list[object] = [1]
    looped.append(looped)
    with pytest.raises(ValidationError) as raised:
        size(looped)
    assert raised.value.field == "key"
    assert "refers to itself" in str(raised.value)
    with pytest.raises(ValidationError):
        size.cache_key(looped)


def test_a_result_the_serializer_would_change_is_refused_not_cached_altered(clock: FakeClock) -> None:
    cache = Cache(MemoryBackend(clock=clock, serializer="json"), clock=clock)

    @cache.cached()
    def bounds(name: str) -> tuple[int, int]:
        return (0, len(name))

    with pytest.raises(ValidationError, match="a tuple comes back as a list") as raised:
        bounds("leo")
    assert raised.value.field == "value"
    assert not cache.exists(bounds.cache_key("leo"))

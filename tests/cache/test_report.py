"""cache_stats(): counters driven through a real Cache, the report's numbers and each recommendation."""

from __future__ import annotations

import gc
import json
import uuid
from typing import Any

import pytest

from buttress.cache import Cache, MemoryBackend
from buttress.cache._report import MIN_LOOKUPS, CacheStatsReport, cache_stats
from buttress.cache._telemetry import instrument
from buttress.cache._warm import run_warmers, warmer
from buttress.clock import FakeClock
from buttress.observe.metrics import MetricsRegistry
from tests._ports import free_port


def _cache(clock: FakeClock, *, max_entries: int = 10_000, ttl: float | None = 3600.0) -> Cache:
    backend = MemoryBackend(max_entries=max_entries, clock=clock)
    return Cache(backend, clock=clock, ttl=ttl, metrics=MetricsRegistry(clock=clock))


def _codes(report: CacheStatsReport, namespace: str | None) -> list[str]:
    return [r.code for r in report.recommendations if r.namespace == namespace]


def _row(report: CacheStatsReport, namespace: str) -> dict[str, Any]:
    rows = {row.namespace: row.model_dump() for row in report.namespaces}
    return rows[namespace]


def test_counts_per_namespace_and_a_healthy_cache_gets_no_advice(clock: FakeClock) -> None:
    cache = _cache(clock)
    artists = cache.namespaced("artists")
    for _ in range(20):
        for key in range(10):
            artists.get_or_set(str(key), lambda: "value")
    cache.set("x", 1)
    cache.get("x")
    cache.get("missing")
    report = cache_stats(cache)
    row = _row(report, "artists")
    assert (row["lookups"], row["hits"], row["misses"], row["stale_hits"], row["sets"]) == (
        200,
        190,
        10,
        0,
        10,
    )
    assert row["hit_rate"] == 0.95
    assert (row["entries"], row["evictions"], row["expired_unread"]) == (10, 0, 0)
    assert row["get_latency"] == {"samples": 4, "p50": 0.0, "p95": 0.0, "p99": 0.0}  # 1 in 64, FakeClock
    assert row["set_latency"]["samples"] == 1
    default = _row(report, "default")
    assert (default["lookups"], default["hits"], default["misses"], default["hit_rate"]) == (2, 1, 1, 0.5)
    assert report.recommendations == []
    assert report.backend.name == "memory"
    assert report.backend.available
    assert report.backend.entries == 11
    assert report.default_ttl == 3600.0
    document = json.loads(report.model_dump_json())
    assert document["namespaces"][0]["namespace"] == "artists"


def test_an_empty_namespace_has_no_hit_rate(clock: FakeClock) -> None:
    cache = _cache(clock)
    cache.namespaced("quiet")
    row = _row(cache_stats(cache), "quiet")
    assert row["hit_rate"] is None
    assert row["get_latency"] == {"samples": 0, "p50": None, "p95": None, "p99": None}


def test_low_hit_rate_with_evictions_says_raise_max_entries(clock: FakeClock) -> None:
    cache = _cache(clock, max_entries=10)
    pages = cache.namespaced("pages")
    for _ in range(2):  # a cycle of 200 keys through a 10-entry LRU: every lookup misses
        for key in range(200):
            pages.get_or_set(f"page:{key}", lambda: "html")
    report = cache_stats(cache)
    row = _row(report, "pages")
    assert (row["lookups"], row["hits"], row["sets"]) == (400, 0, 400)
    assert row["evictions"] == 390
    assert _codes(report, "pages") == ["raise_max_entries"]
    message = report.recommendations[0].message
    assert (
        message == "hit rate 0% over 400 lookups with 390 evictions for 400 sets: raise max_entries (now 10)"
    )


def test_entries_expiring_unread_say_raise_the_ttl(clock: FakeClock) -> None:
    cache = _cache(clock, ttl=1.0)
    search = cache.namespaced("search")
    for _ in range(3):  # each round comes after the previous round's entries expired, unread
        for term in range(200):
            search.get_or_set(f"q:{term}", lambda: ["result"])
        clock.advance(2)
    report = cache_stats(cache)
    row = _row(report, "search")
    assert (row["lookups"], row["hits"], row["sets"], row["evictions"]) == (600, 0, 600, 0)
    assert row["expired_unread"] == 400  # rounds one and two; round three's are not noticed yet
    assert _codes(report, "search") == ["raise_ttl"]  # the TTL explains the misses: keys are not blamed
    assert report.recommendations[0].message == (
        "400 of 600 entries set (67%) expired before anyone read them: raise the TTL (the default is 1 s)"
    )


def test_low_hit_rate_without_evictions_says_the_keys_are_too_specific(clock: FakeClock) -> None:
    cache = _cache(clock)
    orders = cache.namespaced("orders")
    for request_id in range(150):  # a request id in the key: nothing is ever asked for twice
        orders.get_or_set(f"order:42:{request_id}", lambda: {"id": 42})
    report = cache_stats(cache)
    assert _codes(report, "orders") == ["keys_too_specific"]
    assert "keys may be too specific (check the key builder / arguments)" in report.recommendations[0].message
    assert "hit rate 0% over 150 lookups" in report.recommendations[0].message


def test_too_few_lookups_say_nothing(clock: FakeClock) -> None:
    cache = _cache(clock)
    for key in range(MIN_LOOKUPS - 1):
        cache.get_or_set(str(key), lambda: 1)
    assert cache_stats(cache).recommendations == []
    cache.get_or_set("one more", lambda: 1)
    assert _codes(cache_stats(cache), "default") == ["keys_too_specific"]


def test_stale_hits_count_as_served(clock: FakeClock) -> None:
    cache = _cache(clock)
    cache.get_or_set("k", lambda: 1, ttl=1, stale_ttl=60)
    clock.advance(2)
    cache.get_or_set("k", lambda: 2, ttl=1, stale_ttl=60)
    cache.drain()
    row = _row(cache_stats(cache), "default")
    assert (row["lookups"], row["hits"], row["stale_hits"], row["misses"]) == (2, 0, 1, 1)
    assert row["hit_rate"] == 0.5


def test_the_report_lists_the_warmers_and_their_last_run(clock: FakeClock) -> None:
    cache = _cache(clock)

    @warmer(cache, "popular")
    def popular() -> None:
        cache.set("top", [1, 2, 3])

    @warmer(cache, "nightly", on_startup=False)
    def nightly() -> None:
        raise RuntimeError("upstream down")

    before = cache_stats(cache).warmers
    assert [(w.name, w.on_startup, w.running, w.last) for w in before] == [
        ("popular", True, False, None),
        ("nightly", False, False, None),
    ]
    run_warmers(cache)
    after = {w.name: w for w in cache_stats(cache).warmers}
    assert after["popular"].last is not None
    assert after["popular"].last.outcome == "ok"
    assert after["nightly"].last is not None
    assert after["nightly"].last.error == "RuntimeError: upstream down"
    assert json.loads(cache_stats(cache).model_dump_json())["warmers"][1]["last"]["outcome"] == "failed"


def test_a_degraded_redis_backend_is_reported_with_the_outage_length(clock: FakeClock) -> None:
    redis_module = pytest.importorskip("buttress.cache._redis", reason="the Redis backend is not there yet")
    url = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    backend = redis_module.RedisBackend(
        url, prefix=f"test:{uuid.uuid4().hex}", clock=clock, metrics=MetricsRegistry(clock=clock)
    )
    cache = Cache(backend, clock=clock, metrics=MetricsRegistry(clock=clock))
    try:
        cache.set("k", "v")  # served from memory: Redis is down
        assert cache.get("k") == "v"
        clock.advance(12)
        report = cache_stats(cache)
    finally:
        cache.close()
    assert not report.backend.available
    assert report.backend.degraded_seconds == 12.0
    degraded = [r for r in report.recommendations if r.code == "backend_degraded"]
    assert len(degraded) == 1
    assert degraded[0].namespace is None
    assert degraded[0].message.startswith("Redis unreachable for 12 s; serving from memory (")
    assert _row(report, "default")["entries"] == 1  # the fallback's entries


def _series(registry: MetricsRegistry, name: str) -> dict[tuple[str, ...], float]:
    family = registry.snapshot().get(name)
    if family is None:
        return {}
    return {tuple(s["labels"].values()): s["value"] for s in family["series"]}


def test_instrument_exports_the_counts_as_prometheus_metrics(clock: FakeClock) -> None:
    registry = MetricsRegistry(clock=clock)
    cache = Cache(MemoryBackend(max_entries=3, clock=clock), clock=clock, ttl=60, metrics=registry)
    telemetry = instrument(cache)
    assert instrument(cache.namespaced("other")) is telemetry  # once per cache and its siblings
    assert cache._shared.telemetry is telemetry  # kept in the typed slot the cache shares with siblings
    users = cache.namespaced("users")
    for key in range(5):
        users.get_or_set(str(key), lambda: "u")  # 5 misses, 5 sets, 2 evictions (3 entries at most)
    users.get("4")
    users.get_or_set("s", lambda: 1, ttl=1, stale_ttl=60)  # a miss, a set, a third eviction
    clock.advance(2)
    users.get_or_set("s", lambda: 2, ttl=1, stale_ttl=60)
    cache.drain()
    assert _series(registry, "buttress_cache_requests_total") == {
        ("users", "hit"): 1.0,
        ("users", "stale"): 1.0,
        ("users", "miss"): 6.0,
    }
    assert _series(registry, "buttress_cache_sets_total") == {("users",): 7.0}  # and the refresh
    assert _series(registry, "buttress_cache_evictions_total") == {("users",): 3.0}
    assert _series(registry, "buttress_cache_entries") == {("users",): 3.0}
    users.get("4")
    text = registry.render_prometheus().decode()
    assert 'buttress_cache_requests_total{namespace="users",result="hit"} 2.0' in text  # deltas only
    assert 'buttress_cache_sets_total{namespace="users"} 7.0' in text


def test_the_metrics_hook_goes_away_with_the_cache(clock: FakeClock) -> None:
    registry = MetricsRegistry(clock=clock)
    hooks = len(registry._collect_hooks)
    cache = Cache(MemoryBackend(clock=clock), clock=clock, metrics=registry)
    instrument(cache)
    assert len(registry._collect_hooks) == hooks + 1
    del cache
    gc.collect()
    registry.collect()  # the hook finds its telemetry gone and removes itself
    assert len(registry._collect_hooks) == hooks

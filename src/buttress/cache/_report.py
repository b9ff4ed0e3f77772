"""Cache analytics: per-namespace hits, misses, latency, size and evictions, and what to change.

:func:`cache_stats` reads the counters a :class:`~buttress.cache.Cache` keeps on its hot path (shared by its
namespaced siblings) and what the backend reports about itself, and derives recommendations from them
with the explicit thresholds below, so a recommendation can be traced back to the numbers that caused it:

- ``raise_max_entries``: hit rate below :data:`LOW_HIT_RATE` over at least :data:`MIN_LOOKUPS` lookups,
  with evictions above :data:`EVICTION_SHARE` of the sets: entries are pushed out before they are reused.
- ``raise_ttl``: more than :data:`EXPIRED_UNREAD_SHARE` of the sets expired before a single read, over at
  least :data:`MIN_SETS` sets: the TTL is shorter than the time between reuses.
- ``keys_too_specific``: the same low hit rate with evictions at or below that share (or unknown) and no
  ``raise_ttl``: entries stay but are never asked for again, which usually means the key includes an
  argument that varies (a timestamp, a request id, a whole object).
- ``backend_degraded``: the backend serves from memory because Redis is unreachable.

The hit rate counts stale hits as hits: the caller got a value without waiting for the function.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Final, Literal

from pydantic import BaseModel, Field

from buttress.cache._warm import WarmResult, warmers_of

if TYPE_CHECKING:
    from buttress.cache._cache import Cache
    from buttress.cache._stats import NamespaceStats
    from buttress.observe._sketch import SlidingWindowSketch

__all__ = [
    "EVICTION_SHARE",
    "EXPIRED_UNREAD_SHARE",
    "LOW_HIT_RATE",
    "MIN_LOOKUPS",
    "MIN_SETS",
    "BackendReport",
    "CacheStatsReport",
    "LatencyReport",
    "NamespaceReport",
    "Recommendation",
    "WarmerReport",
    "cache_stats",
    "recommend",
]

LOW_HIT_RATE: Final = 0.5
"""A hit rate below this (over :data:`MIN_LOOKUPS` lookups or more) is worth a recommendation."""
MIN_LOOKUPS: Final = 100
"""Fewer lookups than this say nothing reliable about the hit rate."""
EVICTION_SHARE: Final = 0.10
"""Evictions above this share of the sets mean the size bound, not the keys, causes the misses."""
EXPIRED_UNREAD_SHARE: Final = 0.5
"""More entries than this share of the sets expiring unread means the TTL is too short."""
MIN_SETS: Final = 100
"""Fewer sets than this say nothing reliable about how entries expire."""

Code = Literal["raise_max_entries", "keys_too_specific", "raise_ttl", "backend_degraded"]


class LatencyReport(BaseModel):
    """Seconds a backend call took, sampled one call in 64, over the sketch's sliding window."""

    samples: int
    p50: float | None
    p95: float | None
    p99: float | None


class NamespaceReport(BaseModel):
    """What the callers of one namespace saw, and what the backend holds for it."""

    namespace: str
    lookups: int
    hits: int
    misses: int
    stale_hits: int
    sets: int
    hit_rate: float | None = Field(description="(hits + stale hits) / lookups; None before any lookup.")
    get_latency: LatencyReport
    set_latency: LatencyReport
    entries: int | None = Field(description="Entries held locally (memory or L1); None when unknown.")
    evictions: int | None = Field(description="Entries evicted by the size bounds; None when unknown.")
    expired_unread: int | None = Field(description="Entries that expired before any read; None when unknown.")


class Recommendation(BaseModel):
    """One change the numbers suggest; ``namespace`` is None for the backend as a whole."""

    namespace: str | None
    code: Code
    message: str


class BackendReport(BaseModel):
    """The backend in use, whether it serves normally, and which one the settings asked for."""

    name: str
    available: bool
    detail: str
    entries: int | None
    requested: str | None = Field(default=None, description="The backend the settings asked for.")
    reason: str | None = Field(default=None, description="Why this backend was chosen.")
    degraded_seconds: float | None = Field(
        default=None, description="How long Redis has been unreachable, while it is."
    )


class WarmerReport(BaseModel):
    """A registered warmer and its last run in this process."""

    name: str
    on_startup: bool
    running: bool
    last: WarmResult | None


class CacheStatsReport(BaseModel):
    """``GET /cache/stats``: the backend, each namespace, the warmers and the recommendations."""

    backend: BackendReport
    default_ttl: float | None
    namespaces: list[NamespaceReport]
    warmers: list[WarmerReport]
    recommendations: list[Recommendation]


def _latency(sketch: SlidingWindowSketch) -> LatencyReport:
    stats = sketch.stats()
    return LatencyReport(samples=stats["count"], p50=stats["p50"], p95=stats["p95"], p99=stats["p99"])


def _namespace(
    name: str,
    stats: NamespaceStats | None,
    sizes: Mapping[str, int] | None,
    evictions: Mapping[str, int] | None,
    expired_unread: Mapping[str, int] | None,
) -> NamespaceReport:
    lookups = hits = stale = sets = 0
    if stats is not None:
        # Lookups first: a lookup counted between the reads makes misses one lower, never negative.
        lookups, hits, stale, sets = (
            stats.lookups.value,
            stats.hits.value,
            stats.stale_hits.value,
            stats.sets.value,
        )
    served = min(hits + stale, lookups)
    empty = LatencyReport(samples=0, p50=None, p95=None, p99=None)
    return NamespaceReport(
        namespace=name,
        lookups=lookups,
        hits=hits,
        misses=lookups - served,
        stale_hits=stale,
        sets=sets,
        hit_rate=round(served / lookups, 4) if lookups else None,
        get_latency=empty if stats is None else _latency(stats.get_latency),
        set_latency=empty if stats is None else _latency(stats.set_latency),
        entries=None if sizes is None else sizes.get(name, 0),
        evictions=None if evictions is None else evictions.get(name, 0),
        expired_unread=None if expired_unread is None else expired_unread.get(name, 0),
    )


def _max_entries(cache: Cache) -> int | None:
    """The entry bound of the local store: the memory backend's, or a tiered backend's L1."""
    backend: object = cache.backend
    for candidate in (backend, getattr(backend, "l1", None), getattr(backend, "fallback", None)):
        bound = getattr(candidate, "max_entries", None)
        if isinstance(bound, int):
            return bound
    return None


def recommend(
    namespaces: list[NamespaceReport],
    backend: BackendReport,
    *,
    max_entries: int | None = None,
    default_ttl: float | None = None,
) -> list[Recommendation]:
    """The recommendations the numbers support, by the thresholds documented in this module."""
    found: list[Recommendation] = []
    if not backend.available:
        outage = "" if backend.degraded_seconds is None else f" for {backend.degraded_seconds:.0f} s"
        found.append(
            Recommendation(
                namespace=None,
                code="backend_degraded",
                message=f"Redis unreachable{outage}; serving from memory ({backend.detail})",
            )
        )
    for row in namespaces:
        found.extend(_namespace_advice(row, max_entries, default_ttl))
    return found


def _namespace_advice(
    row: NamespaceReport, max_entries: int | None, default_ttl: float | None
) -> list[Recommendation]:
    found: list[Recommendation] = []
    name, sets = row.namespace, row.sets
    evictions, unread = row.evictions or 0, row.expired_unread or 0
    expiring = sets >= MIN_SETS and unread > EXPIRED_UNREAD_SHARE * sets
    if expiring:
        ttl = "" if default_ttl is None else f" (the default is {default_ttl:g} s)"
        found.append(
            Recommendation(
                namespace=name,
                code="raise_ttl",
                message=f"{unread} of {sets} entries set ({unread / sets:.0%}) expired before anyone read "
                f"them: raise the TTL{ttl}",
            )
        )
    if row.hit_rate is None or row.lookups < MIN_LOOKUPS or row.hit_rate >= LOW_HIT_RATE:
        return found
    rate = f"hit rate {row.hit_rate:.0%} over {row.lookups} lookups"
    if evictions > EVICTION_SHARE * sets:
        bound = "" if max_entries is None else f" (now {max_entries})"
        found.append(
            Recommendation(
                namespace=name,
                code="raise_max_entries",
                message=f"{rate} with {evictions} evictions for {sets} sets: raise max_entries{bound}",
            )
        )
    elif not expiring:  # the TTL already explains the misses
        found.append(
            Recommendation(
                namespace=name,
                code="keys_too_specific",
                message=f"{rate} with few evictions: keys may be too specific (check the key builder / "
                "arguments)",
            )
        )
    return found


def _backend(
    cache: Cache,
) -> tuple[BackendReport, Mapping[str, int] | None, Mapping[str, int] | None, Mapping[str, int] | None]:
    info = cache.info()
    degraded: float | None = None
    if not info.available:
        check = cache.check()  # the Redis backend's warning carries the outage's length in seconds
        if check.observed_unit == "s" and isinstance(check.observed_value, int | float):
            degraded = float(check.observed_value)
    choice = cache.backend_choice
    report = BackendReport(
        name=info.name,
        available=info.available,
        detail=info.detail,
        entries=info.entries,
        requested=None if choice is None else choice.requested,
        reason=None if choice is None else choice.reason,
        degraded_seconds=degraded,
    )
    return report, info.sizes, info.evictions, info.expired_unread


def cache_stats(cache: Cache) -> CacheStatsReport:
    """The analytics of ``cache`` and its namespaced siblings, with recommendations."""
    backend, sizes, evictions, expired_unread = _backend(cache)
    recorded = cache.stats_recorder.namespaces()
    names = sorted((set(recorded) | set(sizes or ())) - {""})
    namespaces = [_namespace(name, recorded.get(name), sizes, evictions, expired_unread) for name in names]
    registry = warmers_of(cache)
    warmers = [
        WarmerReport(name=warmer.name, on_startup=warmer.on_startup, running=warmer.running, last=warmer.last)
        for warmer in registry.values()
    ]
    return CacheStatsReport(
        backend=backend,
        default_ttl=cache.ttl,
        namespaces=namespaces,
        warmers=warmers,
        recommendations=recommend(
            namespaces, backend, max_entries=_max_entries(cache), default_ttl=cache.ttl
        ),
    )

"""Prometheus metrics of a cache, exported when ``/metrics`` (or a snapshot) is read, never on the hot path.

A lookup costs a few hundred nanoseconds; a prometheus-client ``inc`` takes a lock and costs more than
that. So the cache counts in :class:`~buttress._tally.Tally` objects and :func:`instrument` registers a
collect hook that copies the deltas since the last export, like ``buttress.resilience._telemetry`` does:

- ``buttress_cache_requests_total{namespace,result}``: lookups by result, ``hit``, ``miss`` or ``stale``;
- ``buttress_cache_sets_total{namespace}``: values stored;
- ``buttress_cache_entries{namespace}``: entries held locally (memory, or a tiered backend's L1);
- ``buttress_cache_evictions_total{namespace}``: entries the size bounds pushed out.

The registry's hook holds the telemetry weakly: once a cache and its siblings are dropped (and collected),
the hook removes itself.
"""

from __future__ import annotations

import threading
import weakref
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from buttress.cache._cache import Cache
    from buttress.observe.metrics import MetricsRegistry

__all__ = [
    "ENTRIES_METRIC",
    "EVICTIONS_METRIC",
    "REQUESTS_METRIC",
    "SETS_METRIC",
    "CacheTelemetry",
    "instrument",
]

REQUESTS_METRIC: Final = "buttress_cache_requests_total"
SETS_METRIC: Final = "buttress_cache_sets_total"
ENTRIES_METRIC: Final = "buttress_cache_entries"
EVICTIONS_METRIC: Final = "buttress_cache_evictions_total"


class CacheTelemetry:
    """The exported counts of one cache (and its siblings), and the hook that exports the rest."""

    def __init__(self, cache: Cache, registry: MetricsRegistry) -> None:
        self.cache = cache  # strongly: a sibling may outlive the cache instrument() was given
        self.registry = registry
        self._lock = threading.Lock()  # two concurrent scrapes must not export the same delta twice
        self._exported: dict[tuple[str, str], int] = {}
        self._hook = _Hook(weakref.ref(self))
        registry.add_collect_hook(self._hook)

    def __repr__(self) -> str:
        return f"CacheTelemetry({self.cache!r})"

    def _delta(self, metric: str, namespace: str, value: int) -> int:
        """``value`` minus what was exported; a count read lower than before (a race) exports nothing."""
        key = (metric, namespace)
        before = self._exported.get(key, 0)
        if value <= before:
            return 0
        self._exported[key] = value
        return value - before

    def export(self, registry: MetricsRegistry) -> None:
        """Copy the counts made since the last export into ``registry``."""
        cache = self.cache
        requests = registry.counter(
            REQUESTS_METRIC,
            "Cache lookups, by namespace and result (hit, miss, stale).",
            labels=("namespace", "result"),
        )
        sets = registry.counter(
            SETS_METRIC, "Values stored in the cache, by namespace.", labels=("namespace",)
        )
        entries = registry.gauge(
            ENTRIES_METRIC,
            "Entries held in this process's cache memory, by namespace.",
            labels=("namespace",),
        )
        evictions = registry.counter(
            EVICTIONS_METRIC, "Cache entries evicted by the size bounds, by namespace.", labels=("namespace",)
        )
        info = cache.info()
        with self._lock:
            for namespace, stats in cache.stats_recorder.namespaces().items():
                lookups = stats.lookups.value  # first: a lookup counted meanwhile cannot make misses negative
                hits, stale = stats.hits.value, stats.stale_hits.value
                counts = {"hit": hits, "stale": stale, "miss": max(lookups - hits - stale, 0)}
                for result, value in counts.items():
                    delta = self._delta(f"requests:{result}", namespace, value)
                    if delta:
                        requests.labels(namespace=namespace, result=result).inc(delta)
                delta = self._delta("sets", namespace, stats.sets.value)
                if delta:
                    sets.labels(namespace=namespace).inc(delta)
            for namespace, held in (info.sizes or {}).items():
                entries.labels(namespace=namespace).set(held)
            for namespace, evicted in (info.evictions or {}).items():
                delta = self._delta("evictions", namespace, evicted)
                if delta:
                    evictions.labels(namespace=namespace).inc(delta)


class _Hook:
    """The collect hook: exports while the telemetry lives, then removes itself."""

    def __init__(self, telemetry: weakref.ref[CacheTelemetry]) -> None:
        self._telemetry = telemetry

    def __call__(self, registry: MetricsRegistry) -> None:
        telemetry = self._telemetry()
        if telemetry is None:
            registry.remove_collect_hook(self)
            return
        telemetry.export(registry)


_lock = threading.Lock()


def instrument(cache: Cache) -> CacheTelemetry:
    """Export the metrics of ``cache`` (and its siblings) to ``cache.metrics`` or the process-wide registry.

    Idempotent: the telemetry is kept in the cache's ``telemetry`` slot and returned again.
    """
    shared = cache._shared
    telemetry = shared.telemetry
    if telemetry is not None:
        return telemetry
    with _lock:
        telemetry = shared.telemetry
        if telemetry is None:
            registry = cache.metrics
            if registry is None:
                from buttress.observe.metrics import get_metrics  # noqa: PLC0415 - keep imports light

                registry = get_metrics()
            telemetry = shared.telemetry = CacheTelemetry(cache, registry)
    return telemetry

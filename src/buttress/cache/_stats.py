"""Per-namespace counters and latency sketches, recorded on the hot path without locks.

Each namespace counts lookups, hits, stale hits and sets in :class:`~buttress._tally.Tally` counters (one C
call each, no lock); misses are lookups that were neither. Get and set latencies go into sliding-window
sketches, sampled one call in 64, so measuring does not cost more than the cache hit it measures.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from buttress._tally import Tally
from buttress.observe.sketch import SlidingWindowSketch

__all__ = ["SAMPLE_MASK", "CacheStatsRecorder", "NamespaceStats"]

SAMPLE_MASK = 63
"""A lookup or set is timed when its sequence number ``& SAMPLE_MASK`` is 0 (one in 64)."""


class NamespaceStats:
    """What one namespace's callers saw."""

    __slots__ = ("get_latency", "hits", "lookups", "namespace", "set_latency", "sets", "stale_hits")

    def __init__(self, namespace: str, monotonic: Callable[[], float]) -> None:
        self.namespace = namespace
        self.lookups = Tally()
        self.hits = Tally()
        self.stale_hits = Tally()
        self.sets = Tally()
        self.get_latency = SlidingWindowSketch(monotonic)
        self.set_latency = SlidingWindowSketch(monotonic)

    @property
    def misses(self) -> int:
        return max(self.lookups.value - self.hits.value - self.stale_hits.value, 0)

    def __repr__(self) -> str:
        return (
            f"NamespaceStats({self.namespace!r}, hits={self.hits.value}, misses={self.misses}, "
            f"stale_hits={self.stale_hits.value}, sets={self.sets.value})"
        )


class CacheStatsRecorder:
    """The :class:`NamespaceStats` of every namespace a cache (and its siblings) used."""

    def __init__(self, monotonic: Callable[[], float]) -> None:
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._namespaces: dict[str, NamespaceStats] = {}

    def namespace(self, namespace: str) -> NamespaceStats:
        stats = self._namespaces.get(namespace)
        if stats is None:
            with self._lock:
                stats = self._namespaces.get(namespace)
                if stats is None:
                    stats = self._namespaces[namespace] = NamespaceStats(namespace, self._monotonic)
        return stats

    def namespaces(self) -> dict[str, NamespaceStats]:
        with self._lock:
            return dict(self._namespaces)

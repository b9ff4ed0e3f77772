"""The query tracker's metrics, computed when ``/metrics`` (or a snapshot) is read, never per statement.

A prometheus-client ``observe`` takes locks and costs more than the whole tracking budget of a statement,
so the statement counts and the duration histogram are derived at collect time from the tracker's
per-fingerprint sketches (merged per operation; their 1 % buckets are placed into the histogram's
buckets, so a count may sit one bucket off only for a duration within 1 % of a bucket bound):

- ``buttress_db_statements_total{backend,operation}``: statements run (``operation`` is select, insert,
  update, delete or other);
- ``buttress_db_statement_seconds{backend,operation}``: their durations (Prometheus buckets; the
  registry's sliding-window quantiles of this histogram stay empty: ``db.queries.top()`` has them);
- ``buttress_db_slow_statements_total{backend,operation}``: statements that reached the slow log;
- ``buttress_db_n_plus_one_total{backend}``: N+1 incidents.

Labels are bounded: never SQL, never a fingerprint.
"""

from __future__ import annotations

import bisect
import logging
import threading
import weakref
from typing import TYPE_CHECKING, Any, Final

from buttress.observe.sketch import QuantileSketch

if TYPE_CHECKING:
    from buttress.db._tracking import QueryTracker
    from buttress.observe.metrics import MetricsRegistry

__all__ = [
    "DURATION_METRIC",
    "N_PLUS_ONE_METRIC",
    "SLOW_METRIC",
    "STATEMENTS_METRIC",
    "TrackingTelemetry",
]

_log = logging.getLogger("buttress.db")

STATEMENTS_METRIC: Final = "buttress_db_statements_total"
DURATION_METRIC: Final = "buttress_db_statement_seconds"
SLOW_METRIC: Final = "buttress_db_slow_statements_total"
N_PLUS_ONE_METRIC: Final = "buttress_db_n_plus_one_total"
BUCKETS: Final = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


def _registry(metrics: MetricsRegistry | None) -> MetricsRegistry:
    if metrics is not None:
        return metrics
    from buttress.observe.metrics import get_metrics  # noqa: PLC0415 - keep imports light

    return get_metrics()


def _cumulative(sketch: QuantileSketch) -> tuple[list[int], float]:
    """Counts per histogram bucket (not cumulative; the last is +Inf) and the sum, in seconds."""
    counts = [0] * (len(BUCKETS) + 1)
    for key, count in sketch.positive.items():
        value = sketch._representative(key) * 1e-9
        counts[bisect.bisect_left(BUCKETS, value)] += count
    counts[0] += sketch.zero_count
    return counts, sketch.sum * 1e-9


class TrackingTelemetry:
    """The metrics of one tracker; the collect hook holds the tracker weakly."""

    def __init__(self, tracker: QueryTracker, metrics: MetricsRegistry | None) -> None:
        self._metrics = metrics
        self.backend = tracker.backend
        self._lock = threading.Lock()
        self._exported: dict[str, tuple[list[int], float]] = {}
        self._registry: MetricsRegistry | None = None
        self._tracker = weakref.ref(tracker)

    def hook(self) -> None:
        """Register the collect hook (once)."""
        if self._registry is None:
            self._registry = _registry(self._metrics)
            self._registry.add_collect_hook(self._collect)

    def count_slow(self, operation: str) -> None:
        _registry(self._metrics).counter(
            SLOW_METRIC,
            "Statements that reached the slow log, by operation.",
            labels=("backend", "operation"),
        ).labels(backend=self.backend, operation=operation).inc()

    def count_n_plus_one(self) -> None:
        _registry(self._metrics).counter(
            N_PLUS_ONE_METRIC, "N+1 incidents: one statement run in a loop in one scope.", labels=("backend",)
        ).labels(backend=self.backend).inc()

    def _collect(self, registry: MetricsRegistry) -> None:
        tracker = self._tracker()
        if tracker is None:
            registry.remove_collect_hook(self._collect)
            return
        statements = registry.counter(
            STATEMENTS_METRIC, "Statements run, by operation.", labels=("backend", "operation")
        )
        durations = registry.histogram(
            DURATION_METRIC,
            "Statement durations, by operation.",
            labels=("backend", "operation"),
            buckets=BUCKETS,
        )
        with self._lock:
            for operation, sketch in tracker.sketches().items():
                counts, total = _cumulative(sketch)
                before, before_total = self._exported.get(operation, ([0] * len(counts), 0.0))
                deltas = [max(now - then, 0) for now, then in zip(counts, before, strict=True)]
                if not any(deltas):
                    continue
                self._exported[operation] = (counts, total)
                statements.labels(backend=self.backend, operation=operation).inc(sum(deltas))
                _add_to_histogram(
                    durations.labels(backend=self.backend, operation=operation), deltas, total - before_total
                )


def _add_to_histogram(child: Any, deltas: list[int], seconds: float) -> None:
    """Add bucket counts to a histogram series at once (prometheus-client has no bulk observe)."""
    prom = child._prom
    try:
        buckets, total = prom._buckets, prom._sum
    except AttributeError:  # pragma: no cover - a prometheus-client without these internals
        _log.warning("cannot export %s: this prometheus-client has no histogram buckets", DURATION_METRIC)
        return
    for bucket, delta in zip(buckets, deltas, strict=True):
        if delta:
            bucket.inc(delta)
    if seconds > 0:
        total.inc(seconds)

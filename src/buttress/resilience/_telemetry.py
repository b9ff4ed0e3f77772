"""Counts and events for every resilience strategy, cheap enough for the success path.

A prometheus-client ``inc`` takes a lock and costs about 370 ns, more than a whole breaker check. So each
strategy instance counts its outcomes in :class:`~buttress._tally.Tally` objects (one C call each) and a
collect hook copies the deltas into the registry's metrics when ``/metrics`` or a snapshot is read. Events
go on the event bus only on the rare paths: transitions, retries, rejections, hedges and fallbacks.

Metrics (labels ``strategy`` and ``key``):

- ``buttress_resilience_calls_total{strategy,key,outcome}``: calls by outcome (``success``, ``failure``,
  ``rejected``, ``retry``, ``gave_up``, ``timeout``, ``fallback``, ...).
- ``buttress_resilience_wait_seconds{strategy,key}``: time spent waiting for a limiter token or a
  bulkhead slot.
- Strategy-specific gauges (breaker state, limiter tokens) registered through :meth:`Telemetry.on_collect`.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from buttress._tally import Tally
from buttress.events import publish_quietly

if TYPE_CHECKING:
    from buttress.events import EventBus
    from buttress.observe.metrics import MetricsRegistry

__all__ = ["CALLS_METRIC", "WAIT_METRIC", "Telemetry", "publish_quietly"]

_log = logging.getLogger(__name__)

CALLS_METRIC = "buttress_resilience_calls_total"
WAIT_METRIC = "buttress_resilience_wait_seconds"
_WAIT_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class Telemetry:
    """The counters and event emitter of one strategy instance (one ``strategy`` and ``key``).

    ``tally(outcome)`` returns the bound ``add`` of that outcome's counter, to keep in a local or a slot:
    calling it is the whole cost of counting. ``metrics`` and ``events`` default to the process-wide
    registry and bus, looked up when first needed.
    """

    __slots__ = (
        "__weakref__",
        "_collectors",
        "_events",
        "_exported",
        "_metrics",
        "_tallies",
        "key",
        "strategy",
    )

    def __init__(
        self,
        strategy: str,
        key: str,
        outcomes: Iterable[str],
        *,
        metrics: MetricsRegistry | None = None,
        events: EventBus | None = None,
    ) -> None:
        self.strategy = strategy
        self.key = key
        self._tallies: dict[str, Tally] = {outcome: Tally() for outcome in outcomes}
        self._exported: dict[str, int] = dict.fromkeys(self._tallies, 0)
        self._collectors: list[Callable[[MetricsRegistry], None]] = []
        self._events = events
        if metrics is None:
            from buttress.observe.metrics import get_metrics  # noqa: PLC0415 - keep imports light

            metrics = get_metrics()
        self._metrics: MetricsRegistry = metrics
        _attach(self, metrics)  # now, so counts export even if nothing rare ever happens

    def __repr__(self) -> str:
        return f"Telemetry({self.strategy!r}, {self.key!r})"

    def tally(self, outcome: str) -> Callable[[], int]:
        """The counting function of ``outcome`` (declared in the constructor's ``outcomes``)."""
        return self._tallies[outcome].add

    def counts(self) -> dict[str, int]:
        """Every outcome's count since this instance was built."""
        return {outcome: tally.value for outcome, tally in self._tallies.items()}

    def on_collect(self, callback: Callable[[MetricsRegistry], None]) -> None:
        """Run ``callback(registry)`` at each collection, for gauges that describe current state."""
        self._collectors.append(callback)

    def metrics(self) -> MetricsRegistry:
        """The registry this instance exports to (the process-wide one unless one was given)."""
        return self._metrics

    def observe_wait(self, seconds: float) -> None:
        """Record time spent waiting for a permit (limiter token, bulkhead slot)."""
        histogram = self.metrics().histogram(
            WAIT_METRIC,
            "Seconds a call waited for a rate-limiter token or a bulkhead slot.",
            labels=("strategy", "key"),
            buckets=_WAIT_BUCKETS,
        )
        histogram.labels(strategy=self.strategy, key=self.key).observe(seconds)

    def emit(self, what: str, **payload: Any) -> None:
        """Publish ``resilience.<strategy>.<what>`` with ``key`` and ``payload``; never raises."""
        publish_quietly(self._events, f"resilience.{self.strategy}.{what}", {"key": self.key, **payload})

    def export(self, registry: MetricsRegistry) -> None:
        """Copy the counts made since the last export into ``registry`` and run the gauge callbacks."""
        calls = registry.counter(
            CALLS_METRIC,
            "Calls through a resilience strategy, by outcome.",
            labels=("strategy", "key", "outcome"),
        )
        for outcome, tally in self._tallies.items():
            value = tally.value
            delta = value - self._exported[outcome]
            if delta:
                self._exported[outcome] = value
                calls.labels(strategy=self.strategy, key=self.key, outcome=outcome).inc(delta)
        for callback in self._collectors:
            callback(registry)


class _Collector:
    """Every live Telemetry of one registry; exports them when the registry is read."""

    def __init__(self) -> None:
        self.members: weakref.WeakSet[Telemetry] = weakref.WeakSet()
        self.lock = threading.Lock()

    def __call__(self, registry: MetricsRegistry) -> None:
        with self.lock:  # two concurrent scrapes must not export the same delta twice
            for member in list(self.members):
                member.export(registry)


_collectors: weakref.WeakKeyDictionary[MetricsRegistry, _Collector] = weakref.WeakKeyDictionary()
_collectors_lock = threading.Lock()


def _attach(telemetry: Telemetry, registry: MetricsRegistry) -> None:
    with _collectors_lock:
        collector = _collectors.get(registry)
        if collector is None:
            collector = _collectors[registry] = _Collector()
            registry.add_collect_hook(collector)
        collector.members.add(telemetry)

"""Per-host HTTP metrics and events, counted lock-free on the request path and exported at scrape time.

Metrics (label ``host`` is the authority, or ``other`` past ``http.max_hosts`` hosts):

- ``buttress_http_requests_total{host,status_class}``: attempts that reached the wire, by ``1xx`` to
  ``5xx``, or ``error`` when no answer came (refused, reset, timed out).
- ``buttress_http_request_duration_seconds{host}``: each attempt, from sending to the body's end.
- ``buttress_http_retries_total{host}``: attempts sent again.
- ``buttress_http_rejected_total{host,reason}``: requests refused before the wire (``breaker``,
  ``limiter``, ``bulkhead``, ``deadline``).
- ``buttress_http_in_flight{host}``: requests holding one of the host's bulkhead slots.

Breaker state and limiter waits are the resilience metrics of the host's strategies (key ``http:<host>``).
Events: ``http.retry`` and ``http.failed`` (a request gave up), with host, method and URL without query.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any, Final

from buttress.events import publish_quietly
from buttress.resilience import Telemetry

if TYPE_CHECKING:
    from buttress.events import EventBus
    from buttress.observe.metrics import HistogramChild, MetricsRegistry

__all__ = ["HostTelemetry"]

REQUESTS_METRIC: Final = "buttress_http_requests_total"
DURATION_METRIC: Final = "buttress_http_request_duration_seconds"
RETRIES_METRIC: Final = "buttress_http_retries_total"
REJECTED_METRIC: Final = "buttress_http_rejected_total"
IN_FLIGHT_METRIC: Final = "buttress_http_in_flight"
STATUS_CLASSES: Final = ("1xx", "2xx", "3xx", "4xx", "5xx", "error")
REJECTIONS: Final = ("breaker", "limiter", "bulkhead", "deadline")
_DURATION_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class HostTelemetry(Telemetry):
    """The counters of one host; ``count_status(code)`` and friends are one C call each."""

    __slots__ = ("_duration", "_lock", "_wait_seconds", "_waits", "count_error", "count_retry", "label")

    def __init__(
        self, host: str, label: str, *, metrics: MetricsRegistry | None, events: EventBus | None
    ) -> None:
        outcomes = (*STATUS_CLASSES, "retry", "limiter_wait", *(f"rejected:{r}" for r in REJECTIONS))
        super().__init__("http", host, outcomes, metrics=metrics, events=events)
        self.label = label
        self.count_error = self.tally("error")
        self.count_retry = self.tally("retry")
        self._waits = self.tally("limiter_wait")
        self._wait_seconds = 0.0
        self._lock = threading.Lock()
        self._duration: HistogramChild | None = None

    def count_status(self, status: int) -> None:
        index = status // 100
        self._tallies[STATUS_CLASSES[index - 1] if 1 <= index <= 5 else "error"].add()

    def count_rejection(self, reason: str) -> None:
        self._tallies[f"rejected:{reason}"].add()

    def observe_duration(self, seconds: float) -> None:
        duration = self._duration
        if duration is None:
            family = self.metrics().histogram(
                DURATION_METRIC,
                "Seconds per HTTP attempt, from sending the request to the end of the response body.",
                labels=("host",),
                buckets=_DURATION_BUCKETS,
            )
            duration = self._duration = family.labels(host=self.label)  # resolved once: labels() takes a lock
        duration.observe(seconds)

    def count_limiter_wait(self, seconds: float) -> None:
        self._waits()
        with self._lock:
            self._wait_seconds += seconds

    def event(self, what: str, **payload: Any) -> None:
        """Publish ``http.<what>``; never raises."""
        publish_quietly(self._events, f"http.{what}", {"host": self.key, **payload})

    # -- reading ------------------------------------------------------------------------------------

    def requests(self) -> int:
        return sum(self._tallies[name].value for name in STATUS_CLASSES)

    def status_classes(self) -> dict[str, int]:
        counts = {name: self._tallies[name].value for name in STATUS_CLASSES}
        return {name: count for name, count in counts.items() if count}

    def retries(self) -> int:
        return self._tallies["retry"].value

    def rejections(self) -> dict[str, int]:
        counts = {reason: self._tallies[f"rejected:{reason}"].value for reason in REJECTIONS}
        return {reason: count for reason, count in counts.items() if count}

    def limiter_waits(self) -> int:
        return self._tallies["limiter_wait"].value

    def limiter_wait_seconds(self) -> float:
        return self._wait_seconds

    def set_in_flight(self, registry: MetricsRegistry, value: int) -> None:
        gauge = registry.gauge(
            IN_FLIGHT_METRIC, "HTTP requests holding a slot of the host's bulkhead.", labels=("host",)
        )
        gauge.labels(host=self.label).set(value)

    def export(self, registry: MetricsRegistry) -> None:
        requests = registry.counter(
            REQUESTS_METRIC,
            "HTTP attempts that reached the wire, by status class.",
            labels=("host", "status_class"),
        )
        retries = registry.counter(RETRIES_METRIC, "HTTP attempts sent again.", labels=("host",))
        rejected = registry.counter(
            REJECTED_METRIC, "HTTP requests refused before the wire, by reason.", labels=("host", "reason")
        )
        for outcome, tally in self._tallies.items():
            value = tally.value
            delta = value - self._exported[outcome]
            if not delta:
                continue
            self._exported[outcome] = value
            if outcome == "retry":
                retries.labels(host=self.label).inc(delta)
            elif outcome.startswith("rejected:"):
                rejected.labels(host=self.label, reason=outcome.partition(":")[2]).inc(delta)
            elif outcome != "limiter_wait":
                requests.labels(host=self.label, status_class=outcome).inc(delta)
        for callback in self._collectors:
            callback(registry)

"""The jobs' metrics and events.

Metrics (labels bounded: queue names and job type names are code, outcomes a fixed set):

- ``buttress_jobs_deferred_total{queue}``: jobs stored by ``defer``;
- ``buttress_jobs_finished_total{queue,task,outcome}``: attempts that ended (succeeded, failed, retrying,
  cancelled, dead, lost: a completion fenced off because the lease had passed to another worker);
- ``buttress_jobs_run_seconds{queue}``: how long attempts ran;
- ``buttress_jobs_reclaimed_total``: running jobs taken back from workers that stopped heartbeating;
- ``buttress_jobs_depth{queue}`` and ``buttress_jobs_oldest_seconds{queue}``: due jobs waiting and the
  age of the oldest, refreshed by each worker's sweep.

Events: ``jobs.<id>.status`` (``{"job_id", "task", "queue", "status"}``) on every change a worker or a
cancel makes, and ``jobs.<id>.progress`` from :meth:`JobContext.progress`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from buttress.events import publish_quietly
from buttress.observe.metrics import get_metrics

if TYPE_CHECKING:
    from buttress.events import EventBus
    from buttress.observe.metrics import MetricsRegistry

__all__ = ["JobsTelemetry"]

_RUN_BUCKETS = (0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 1800.0)


class JobsTelemetry:
    """Counts what the queue and its workers do, and announces job status changes on the bus."""

    def __init__(self, metrics: MetricsRegistry | None = None, events: EventBus | None = None) -> None:
        registry = metrics or get_metrics()
        self.events = events
        self._deferred = registry.counter("buttress_jobs_deferred_total", "Jobs deferred.", labels=("queue",))
        self._finished = registry.counter(
            "buttress_jobs_finished_total",
            "Job attempts that ended, by outcome.",
            labels=("queue", "task", "outcome"),
        )
        self._run = registry.histogram(
            "buttress_jobs_run_seconds", "Seconds job attempts ran.", labels=("queue",), buckets=_RUN_BUCKETS
        )
        self._finished_children: dict[tuple[str, str, str], Any] = {}
        self._run_children: dict[str, Any] = {}
        self._reclaimed = registry.counter(
            "buttress_jobs_reclaimed_total", "Running jobs taken back from workers that stopped heartbeating."
        )
        self._depth = registry.gauge(
            "buttress_jobs_depth", "Due jobs waiting for a worker.", labels=("queue",)
        )
        self._oldest = registry.gauge(
            "buttress_jobs_oldest_seconds",
            "Age of the oldest due job waiting for a worker.",
            labels=("queue",),
        )

    def deferred(self, queue: str, count: int) -> None:
        self._deferred.labels(queue=queue).inc(count)

    def finished(self, queue: str, task: str, outcome: str, seconds: float | None) -> None:
        counter = self._finished_children.get((queue, task, outcome))
        if counter is None:  # labels() looks the child up under a lock: once per combination, not per job
            counter = self._finished.labels(queue=queue, task=task, outcome=outcome)
            self._finished_children[(queue, task, outcome)] = counter
        counter.inc()
        if seconds is not None:
            histogram = self._run_children.get(queue)
            if histogram is None:
                histogram = self._run_children[queue] = self._run.labels(queue=queue)
            histogram.observe(seconds)

    def reclaimed(self, count: int) -> None:
        if count:
            self._reclaimed.inc(count)

    def backlog(self, depth: dict[str, int], oldest: dict[str, float]) -> None:
        for queue, value in depth.items():
            self._depth.labels(queue=queue).set(value)
            self._oldest.labels(queue=queue).set(oldest.get(queue, 0.0))

    def status(self, job_id: int, task: str, queue: str, status: str, **extra: Any) -> None:
        publish_quietly(
            self.events,
            f"jobs.{job_id}.status",
            {"job_id": job_id, "task": task, "queue": queue, "status": status, **extra},
        )

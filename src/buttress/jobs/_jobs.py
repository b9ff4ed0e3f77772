"""``Jobs``: the queue of one database, and everything done to it from outside a worker.

One per process from the container (:func:`get_jobs`): it defers calls, reads, lists, cancels, retries
and purges jobs, reports queue statistics and builds workers. On first use it brings buttress's job
tables up to date (``jobs.auto_migrate``; ``buttress db upgrade`` does the same by hand).
"""

from __future__ import annotations

import builtins
import os
import socket
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from buttress.clock import SYSTEM_CLOCK, Clock
from buttress.config import JobsSettings, get_settings
from buttress.db import SchemaGate
from buttress.errors import ValidationError
from buttress.jobs._eager import EagerRunner
from buttress.jobs._handle import JobHandle, missing
from buttress.jobs._info import JobInfo
from buttress.jobs._payload import dump_args
from buttress.jobs._plans import (
    NewJob,
    cancel_plan,
    defer_plan,
    get_plan,
    list_plan,
    purge_plan,
    retry_plan,
    stats_plan,
)
from buttress.jobs._registry import REGISTRY, Registry
from buttress.jobs._states import FINISHED, PENDING, JobStatus
from buttress.jobs._store import SqlJobStore, store_for
from buttress.jobs._telemetry import JobsTelemetry

if TYPE_CHECKING:
    from buttress.db import Database
    from buttress.events import EventBus
    from buttress.jobs._task import Deferral
    from buttress.jobs._worker import Worker
    from buttress.observe.metrics import MetricsRegistry

__all__ = ["JOBS_REVISION", "Jobs", "QueueStats", "Stats", "get_jobs", "stats_of"]

JOBS_REVISION: Final = "0002"
"""The revision of buttress's schema that created the job tables (buttress's own ids are 4-digit numbers)."""


@dataclass(frozen=True, slots=True)
class QueueStats:
    """One queue: jobs per status, due jobs waiting, the oldest one's age, running jobs past their lease."""

    name: str
    counts: dict[str, int]
    depth: int
    oldest_seconds: float
    stalled: int


@dataclass(frozen=True, slots=True)
class Stats:
    """Every queue's statistics and the workers that heartbeat (id, host, pid, queues, concurrency, ages)."""

    queues: dict[str, QueueStats]
    workers: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (the ``/ops/queue/stats`` shape)."""
        return {
            "queues": {
                name: {
                    "counts": queue.counts,
                    "depth": queue.depth,
                    "oldest_seconds": queue.oldest_seconds,
                    "stalled": queue.stalled,
                }
                for name, queue in sorted(self.queues.items())
            },
            "workers": self.workers,
        }


def stats_of(now: float, counts: list[tuple[Any, ...]], workers: list[tuple[Any, ...]]) -> Stats:
    """The :class:`Stats` of :func:`~buttress.jobs._plans.stats_plan`'s rows."""
    per_queue: dict[str, dict[str, int]] = {}
    oldest: dict[str, float] = {}
    stalled: dict[str, int] = {}
    for queue, status, count, due_since, expired in counts:
        per_queue.setdefault(queue, {})[status] = int(count)
        if due_since is not None:
            oldest[queue] = min(oldest.get(queue, now), float(due_since))
        stalled[queue] = stalled.get(queue, 0) + int(expired or 0)
    queues = {}
    for queue, by_status in per_queue.items():
        depth = sum(by_status.get(status.value, 0) for status in PENDING)
        queues[queue] = QueueStats(
            name=queue,
            counts=by_status,
            depth=depth,
            oldest_seconds=max(0.0, now - oldest[queue]) if queue in oldest else 0.0,
            stalled=stalled.get(queue, 0),
        )
    alive = [
        {
            "id": row[0],
            "host": row[1],
            "pid": row[2],
            "queues": row[3].split(","),
            "concurrency": row[4],
            "started_at": row[5],
            "heartbeat_age": max(0.0, now - row[6]),
        }
        for row in workers
    ]
    return Stats(queues, alive)


class Jobs:
    """The job queue of ``db`` (default: the container's database) and its definitions (``registry``).

    ``clock`` stamps and schedules jobs (tests pass a FakeClock); ``events`` and ``metrics`` default to
    the process's bus and registry; ``settings`` to the ``jobs`` section.
    """

    def __init__(
        self,
        db: Database | None = None,
        *,
        settings: JobsSettings | None = None,
        clock: Clock | None = None,
        registry: Registry | None = None,
        events: EventBus | None = None,
        metrics: MetricsRegistry | None = None,
    ) -> None:
        if db is None:
            from buttress.container import get_container  # noqa: PLC0415 - only without an explicit db
            from buttress.db import Database  # noqa: PLC0415 - the container's type key

            db = get_container().resolve(Database)
        self.db = db
        self.settings = settings or get_settings().jobs
        self.clock = clock or SYSTEM_CLOCK
        self.registry = registry or REGISTRY
        self.events = events
        self.store: SqlJobStore = store_for(db)
        self.telemetry = JobsTelemetry(metrics, events)
        self._schema = SchemaGate(db, JOBS_REVISION, auto_migrate=self.settings.auto_migrate)
        self._wakers: list[Callable[[], None]] = []
        self._eager = EagerRunner(self)

    def __repr__(self) -> str:
        return f"<Jobs {self.store!r}>"

    # -- schema -------------------------------------------------------------------------------------

    def ensure_schema(self) -> None:
        """Create or upgrade the job tables once per process (``jobs.auto_migrate``; see SchemaGate)."""
        self._schema.ensure()

    async def aensure_schema(self) -> None:
        """Async :meth:`ensure_schema`."""
        await self._schema.aensure()

    # -- wake-ups of this process's workers -----------------------------------------------------------

    def add_waker(self, wake: Callable[[], None]) -> Callable[[], None]:
        """Call ``wake()`` after every defer, retry and release from this process; returns the remover."""
        self._wakers.append(wake)
        return lambda: self._wakers.remove(wake)

    def wake(self) -> None:
        """Tell this process's idle workers that jobs are waiting."""
        for wake in list(self._wakers):
            wake()

    # -- defer --------------------------------------------------------------------------------------

    def _new_jobs(
        self, deferral: Deferral, calls: Sequence[tuple[Sequence[Any], Mapping[str, Any]]]
    ) -> list[NewJob]:
        task = deferral.task
        now = self.clock.time()
        run_at = deferral.at if deferral.at is not None else now + (deferral.delay or 0.0)
        attempts = task.attempts(self.settings.attempts)
        return [
            NewJob(
                queue=deferral.queue,
                task=task.name,
                args=dump_args(args, kwargs),
                priority=deferral.priority,
                run_at=run_at,
                max_attempts=attempts,
                key=deferral.key,
                timeout=task.timeout,
                result_ttl=task.result_ttl,
            )
            for args, kwargs in calls
        ]

    def _stored(self, deferral: Deferral, ids: list[int]) -> list[JobHandle]:
        self.telemetry.deferred(deferral.queue, len(ids))
        self.wake()
        return [JobHandle(job_id, self, deferral.task.name) for job_id in ids]

    def defer(
        self, deferral: Deferral, calls: Sequence[tuple[Sequence[Any], Mapping[str, Any]]]
    ) -> list[JobHandle]:
        """Store ``calls`` of ``deferral``'s task in one transaction; their handles, in order."""
        if not calls:
            return []
        if self.settings.eager:
            return [self._eager.run(deferral.task, args, kwargs) for args, kwargs in calls]
        new = self._new_jobs(deferral, calls)
        self.ensure_schema()
        now = self.clock.time()
        bounds = self.registry.bounds()
        ids = self.store.run(lambda: defer_plan(new, now, bounds, self.store.dialect))
        return self._stored(deferral, ids)

    async def adefer(
        self, deferral: Deferral, calls: Sequence[tuple[Sequence[Any], Mapping[str, Any]]]
    ) -> list[JobHandle]:
        """Async :meth:`defer`."""
        if not calls:
            return []
        if self.settings.eager:
            return [await self._eager.arun(deferral.task, args, kwargs) for args, kwargs in calls]
        new = self._new_jobs(deferral, calls)
        await self.aensure_schema()
        now = self.clock.time()
        bounds = self.registry.bounds()
        ids = await self.store.arun(lambda: defer_plan(new, now, bounds, self.store.dialect))
        return self._stored(deferral, ids)

    # -- reading ------------------------------------------------------------------------------------

    def get(self, job_id: int) -> JobInfo:
        """The job ``job_id``; ``NotFoundError`` when there is none (or it was purged)."""
        self.ensure_schema()
        info = self.store.run(lambda: get_plan(job_id, self.clock.time()), write=False)
        if info is None:
            raise missing(job_id)
        return info

    async def aget(self, job_id: int) -> JobInfo:
        """Async :meth:`get`."""
        await self.aensure_schema()
        info = await self.store.arun(lambda: get_plan(job_id, self.clock.time()), write=False)
        if info is None:
            raise missing(job_id)
        return info

    def list(
        self,
        *,
        status: JobStatus | str | Sequence[JobStatus | str] = (),
        queue: str | None = None,
        task: str | None = None,
        before_id: int | None = None,
        limit: int = 50,
    ) -> list[JobInfo]:
        """Jobs newest first, filtered by stored status, queue and task name; ``before_id`` pages."""
        statuses = _statuses(status)
        _check_limit(limit)
        self.ensure_schema()
        now = self.clock.time()
        return self.store.run(
            lambda: list_plan(
                now, statuses=statuses, queue=queue, task=task, before_id=before_id, limit=limit
            ),
            write=False,
        )

    async def alist(
        self,
        *,
        status: JobStatus | str | Sequence[JobStatus | str] = (),
        queue: str | None = None,
        task: str | None = None,
        before_id: int | None = None,
        limit: int = 50,
    ) -> builtins.list[JobInfo]:
        """Async :meth:`list`."""
        statuses = _statuses(status)
        _check_limit(limit)
        await self.aensure_schema()
        now = self.clock.time()
        return await self.store.arun(
            lambda: list_plan(
                now, statuses=statuses, queue=queue, task=task, before_id=before_id, limit=limit
            ),
            write=False,
        )

    def stats(self) -> Stats:
        """Per-queue counts, depth, oldest due job's age and stalled leases; the live workers."""
        self.ensure_schema()
        now = self.clock.time()
        counts, workers = self.store.run(lambda: stats_plan(now), write=False)
        return stats_of(now, counts, workers)

    async def astats(self) -> Stats:
        """Async :meth:`stats`."""
        await self.aensure_schema()
        now = self.clock.time()
        counts, workers = await self.store.arun(lambda: stats_plan(now), write=False)
        return stats_of(now, counts, workers)

    # -- changing -----------------------------------------------------------------------------------

    def cancel(self, job_id: int) -> JobStatus:
        """Cancel a job: ``cancelled`` when it was waiting (it will never run), ``running`` when its worker
        was asked to stop it (an async job is cancelled at once; a sync one sees ``ctx.cancelled``), or the
        final status it already had."""
        self.ensure_schema()
        now = self.clock.time()
        status = self.store.run(
            lambda: cancel_plan(job_id, now, self.settings.result_ttl, self.store.dialect)
        )
        self._cancelled(job_id, status)
        return status

    async def acancel(self, job_id: int) -> JobStatus:
        """Async :meth:`cancel`."""
        await self.aensure_schema()
        now = self.clock.time()
        status = await self.store.arun(
            lambda: cancel_plan(job_id, now, self.settings.result_ttl, self.store.dialect)
        )
        self._cancelled(job_id, status)
        return status

    def _cancelled(self, job_id: int, status: JobStatus) -> None:
        if status is JobStatus.CANCELLED:
            self.telemetry.status(job_id, "", "", status.value)
        elif status is JobStatus.RUNNING:
            self.wake()  # this process's workers check their cancel requests at once

    def retry(self, job_id: int) -> JobStatus:
        """Queue a failed, cancelled or dead job again (attempts reset); its status afterwards."""
        self.ensure_schema()
        status = self.store.run(lambda: retry_plan(job_id, self.clock.time(), self.store.dialect))
        if status is JobStatus.QUEUED:
            self.wake()
        return status

    async def aretry(self, job_id: int) -> JobStatus:
        """Async :meth:`retry`."""
        await self.aensure_schema()
        status = await self.store.arun(lambda: retry_plan(job_id, self.clock.time(), self.store.dialect))
        if status is JobStatus.QUEUED:
            self.wake()
        return status

    def purge(
        self, *, older_than: float = 0.0, status: JobStatus | str | Sequence[JobStatus | str] = ()
    ) -> int:
        """Delete finished jobs (of ``status``; default: every final state) finished ``older_than`` s ago."""
        statuses = _statuses(status) or sorted(FINISHED)
        _check_final(statuses)
        self.ensure_schema()
        before = self.clock.time() - older_than
        return self.store.run(lambda: purge_plan(statuses, before))

    async def apurge(
        self, *, older_than: float = 0.0, status: JobStatus | str | Sequence[JobStatus | str] = ()
    ) -> int:
        """Async :meth:`purge`."""
        statuses = _statuses(status) or sorted(FINISHED)
        _check_final(statuses)
        await self.aensure_schema()
        before = self.clock.time() - older_than
        return await self.store.arun(lambda: purge_plan(statuses, before))

    # -- workers ------------------------------------------------------------------------------------

    def worker(
        self,
        *,
        queues: Sequence[str] | None = None,
        concurrency: int | None = None,
        tasks: Sequence[str] | None = None,
        name: str | None = None,
        scheduler: bool = True,
    ) -> Worker:
        """A worker for ``queues`` (default: every queue a defined job uses) running ``concurrency`` jobs.

        ``scheduler``: also run a :class:`~buttress.jobs.Scheduler` that fires the schedules (exactly once
        however many workers run one; ``buttress worker --no-scheduler`` turns it off).
        """
        from buttress.jobs._worker import Worker  # noqa: PLC0415 - the worker builds on this module

        return Worker(
            self,
            queues=queues,
            concurrency=concurrency or self.settings.concurrency,
            tasks=tasks,
            name=name or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}",
            scheduler=scheduler,
        )


def _statuses(value: JobStatus | str | Sequence[JobStatus | str]) -> list[JobStatus]:
    items = [value] if isinstance(value, str) else list(value)
    out = []
    for item in items:
        try:
            out.append(JobStatus(item))
        except ValueError:
            raise ValidationError(
                f"status {item!r} is not a job status; use one of {', '.join(s.value for s in JobStatus)}",
                field="status",
            ) from None
    return out


def _check_final(statuses: Sequence[JobStatus]) -> None:
    active = [status.value for status in statuses if status not in FINISHED]
    if active:
        raise ValidationError(
            f"purge deletes finished jobs only; {active} are not final (cancel them first)", field="status"
        )


def _check_limit(limit: object) -> None:
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 1000:
        raise ValidationError(f"limit must be an int from 1 to 1000, got {limit!r}", field="limit")


def get_jobs() -> Jobs:
    """The process's :class:`Jobs` (from the container)."""
    from buttress.container import get_container  # noqa: PLC0415 - resolved on use

    return get_container().resolve(Jobs)

"""Durable jobs on SQLite or PostgreSQL: priorities, limits across workers, fenced leases, cancel, progress.

::

    from buttress.jobs import JobContext, job, schedule

    @job(queue="episodes", priority=5, retry=3, timeout=600, concurrency=2)
    async def transcode(ctx: JobContext, episode: int) -> dict:
        ctx.progress(0.5, "cutting")
        return {"episode": episode}

    handle = transcode.defer(episode=7)          # stored; a worker runs it
    handle.result(timeout=60)                    # {"episode": 7}

    @schedule(at=["09:00", "15:00", "21:00"], tz="Europe/London")   # or cron="0 9 * * 1-5", every=60
    def post_daily() -> None: ...

Run workers with ``buttress worker --import myapp.jobs`` (each runs a scheduler too: every fire becomes
exactly one job however many run). Jobs live in the database of
``BUTTRESS_DATABASE_URL`` (the embedded SQLite file when unset); when it is down, deferring raises
``BackendUnavailable``: jobs never fall back to memory. ``warm_job("popular")`` runs a cache warmer as a
job (once across processes, retried, cancellable). See docs/jobs.md.
"""

from buttress._extras import require

for _package in ("sqlalchemy", "cronsim"):
    require(_package, "jobs", "buttress.jobs (durable jobs and schedules)")

from buttress.jobs._context import JobCancelled, JobContext, current_job
from buttress.jobs._handle import JobFailed, JobHandle
from buttress.jobs._info import JobInfo
from buttress.jobs._jobs import Jobs, QueueStats, Stats, get_jobs
from buttress.jobs._provide import health_checks, register_services
from buttress.jobs._registry import REGISTRY, QueueSpec, Registry, define_queue
from buttress.jobs._schedule import Schedule, schedule
from buttress.jobs._schedule_spec import ScheduleSpec
from buttress.jobs._schedule_view import describe_schedules
from buttress.jobs._scheduler import Scheduler
from buttress.jobs._states import JobStatus
from buttress.jobs._store import JobStore, PostgresJobStore, SqliteJobStore
from buttress.jobs._task import Deferral, Task, job
from buttress.jobs._warm import WARM_QUEUE, WarmFailed, WarmTask, schedule_warmer, warm_job
from buttress.jobs._worker import Worker

__all__ = [
    "REGISTRY",
    "WARM_QUEUE",
    "Deferral",
    "JobCancelled",
    "JobContext",
    "JobFailed",
    "JobHandle",
    "JobInfo",
    "JobStatus",
    "JobStore",
    "Jobs",
    "PostgresJobStore",
    "QueueSpec",
    "QueueStats",
    "Registry",
    "Schedule",
    "ScheduleSpec",
    "Scheduler",
    "SqliteJobStore",
    "Stats",
    "Task",
    "WarmFailed",
    "WarmTask",
    "Worker",
    "current_job",
    "define_queue",
    "describe_schedules",
    "get_jobs",
    "health_checks",
    "job",
    "register_services",
    "schedule",
    "schedule_warmer",
    "warm_job",
]

"""Jobs on the ops server: list and read jobs, queue statistics, schedules; cancel and retry a job (admin).

``GET /jobs`` (filtered by status, queue and task, newest first, paged by ``before_id``),
``GET /jobs/{id}``, ``GET /queue/stats`` and ``GET /schedules`` read the job tables of the process's
:class:`~buttress.jobs.Jobs`. A job's arguments, result, error and idempotency key can carry anything (an
e-mail address, a token), so they are shown only in development (``expose_details``) or to a caller with
valid admin credentials; anonymous readers get them as null, with ``details: false``.
``POST /jobs/{id}/cancel`` and ``/retry`` exist only when admin auth is configured, like every admin endpoint.

The routes describe the jobs only where jobs are in use: the process built its ``Jobs``, defines job
types, names a database (``BUTTRESS_DATABASE_URL``), or the embedded ``buttress.db`` exists. Otherwise
the lists are empty and a job id is a 404: asking never creates the embedded SQLite file.
"""

# No `from __future__ import annotations`: FastAPI evaluates the endpoint annotations.

import logging
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi import Path as PathParam
from pydantic import BaseModel, ConfigDict, Field

from buttress._bearer import AdminIdentity
from buttress.container import get_container
from buttress.db import DEFAULT_URL
from buttress.errors import ConflictError, NotFoundError
from buttress.jobs import REGISTRY, JobInfo, Jobs, JobStatus, Stats, describe_schedules
from buttress.server._ops import Ops
from buttress.server._problems import problem_responses

__all__ = [
    "JobAction",
    "JobList",
    "JobView",
    "QueueStatsView",
    "ScheduleView",
    "jobs_admin_router",
    "jobs_router",
]

_log = logging.getLogger("buttress.server")

_HIDDEN = ("args", "kwargs", "result", "error", "key")
"""What an anonymous reader does not see of a job: what it was called with and what came of it."""


class JobView(BaseModel):
    """One job as the ops server shows it (times in epoch seconds)."""

    model_config = ConfigDict(populate_by_name=True)  # ``kwargs`` is a field's alias (a name pydantic keeps)
    id: int
    task: str = Field(description="The job type's name.")
    queue: str
    status: JobStatus = Field(description="A scheduled or retrying job whose time has come reads queued.")
    priority: int
    args: list[Any] | None = Field(description="Positional arguments (null without details).")
    keywords: dict[str, Any] | None = Field(
        alias="kwargs", description="Keyword arguments (null without details)."
    )
    attempts: int
    max_attempts: int
    run_at: float
    created_at: float
    started_at: float | None
    finished_at: float | None
    expires_at: float | None = Field(description="When the finished row is deleted (its result TTL).")
    progress: float | None
    message: str | None = Field(description="The latest progress message.")
    result: Any = Field(default=None, description="The return value (null without details).")
    error: str | None = Field(description="The last attempt's error (null without details).")
    worker: str | None
    lease_expires: float | None
    lease_token: int
    key: str | None = Field(description="The idempotency key (null without details).")
    cancel_requested: bool
    schedule: str | None
    fire_at: float | None
    details: bool = Field(description="Whether args, kwargs, result, error and key are shown.")


class JobList(BaseModel):
    """A page of jobs, newest first; pass ``next_before_id`` as ``before_id`` for the next page."""

    jobs: list[JobView]
    next_before_id: int | None = Field(description="Null on the last page.")


class QueueStatsView(BaseModel):
    """One queue: jobs per status, due jobs waiting, the oldest one's age, running jobs past their lease."""

    counts: dict[str, int]
    depth: int
    oldest_seconds: float
    stalled: int


class WorkerView(BaseModel):
    """A worker that registered and has not been forgotten (``heartbeat_age`` tells whether it lives)."""

    id: str
    host: str
    pid: int
    queues: list[str]
    concurrency: int
    started_at: float
    heartbeat_age: float


class StatsView(BaseModel):
    """Every queue's statistics and the workers."""

    queues: dict[str, QueueStatsView]
    workers: list[WorkerView]


class ScheduleView(BaseModel):
    """One stored schedule: what fires, how it catches up and overlaps, and when it fires next."""

    name: str
    spec: str = Field(description="The canonical expression: cron, every or at, with its time zone.")
    tz: str
    task: str
    queue: str
    catch_up: str
    overlap: str
    active: bool = Field(description="False once no scheduler's code defines it any more.")
    last_fire_at: float | None
    next_fires: list[float] = Field(description="The next fire times (epoch seconds).")


class JobAction(BaseModel):
    """What an admin action left the job as: ``cancelled``, ``running`` (its worker was asked to stop
    it), or ``queued`` (a retry)."""

    id: int
    status: JobStatus


def _embedded_exists() -> bool:
    return Path(DEFAULT_URL.removeprefix("sqlite:///")).is_file()


def jobs_in_use(ops: Ops) -> Jobs | None:
    """The process's ``Jobs`` if jobs are in use here (see the module docstring), else None."""
    container = get_container()
    jobs = container.peek(Jobs)
    if jobs is None and (REGISTRY.tasks or ops.settings.database_url or _embedded_exists()):
        jobs = container.resolve(Jobs)
    return jobs


def _not_found(job_id: int) -> NotFoundError:
    return NotFoundError(
        "job",
        job_id,
        message=f"no job {job_id}: jobs are not in use in this process (no database, no job types)",
        context={"job_id": job_id},
    )


def job_view(info: JobInfo, *, details: bool) -> dict[str, Any]:
    """``info`` as the ops API shows it; without ``details`` its arguments, result, error and key are null."""
    data = info.to_dict()
    if not details:
        data.update(dict.fromkeys(_HIDDEN))
    data["details"] = details
    return data


_MAX_ID = 2**63 - 1
"""Job ids are 64-bit (bigint): a larger number names no job and is refused before any query."""
_JobId = Annotated[int, PathParam(ge=1, le=_MAX_ID, description="The job's id.")]


def jobs_router(ops: Ops, route_class: type, optional_admin: Any) -> APIRouter:
    router = APIRouter(tags=["jobs"], route_class=route_class)
    admin_problems = problem_responses(401) if ops.auth.configured else {}
    # Admin credentials are optional here: {} is the "no authentication" alternative.
    optional_security: dict[str, Any] | None = {"security": [{}]} if ops.auth.configured else None
    Identity = Annotated[AdminIdentity | None, Depends(optional_admin)]  # noqa: N806 - a type alias

    def details(identity: AdminIdentity | None) -> bool:
        return ops.expose_details or identity is not None

    @router.get(
        "/jobs",
        summary="Jobs",
        response_model=JobList,
        responses={**admin_problems, **problem_responses(422, 503)},
        openapi_extra=optional_security,
    )
    def list_jobs(
        *,
        identity: Identity,
        status: Annotated[
            list[JobStatus] | None, Query(description="Only jobs stored in these states (repeatable).")
        ] = None,
        queue: Annotated[str | None, Query(max_length=200, description="Only this queue's jobs.")] = None,
        task: Annotated[str | None, Query(max_length=200, description="Only jobs of this type.")] = None,
        before_id: Annotated[
            int | None, Query(ge=1, le=_MAX_ID, description="Only jobs older than this id.")
        ] = None,
        limit: Annotated[int, Query(ge=1, le=1000, description="At most this many jobs.")] = 50,
    ) -> Any:
        """Jobs newest first, filtered by stored status, queue and task; arguments, results and errors
        only in development or with admin credentials."""
        jobs = jobs_in_use(ops)
        if jobs is None:
            return {"jobs": [], "next_before_id": None}
        found = jobs.list(status=status or (), queue=queue, task=task, before_id=before_id, limit=limit)
        shown = details(identity)
        return {
            "jobs": [job_view(info, details=shown) for info in found],
            "next_before_id": found[-1].id if len(found) == limit else None,
        }

    @router.get(
        "/jobs/{job_id}",
        summary="A job",
        response_model=JobView,
        responses={**admin_problems, **problem_responses(404, 422, 503)},
        openapi_extra=optional_security,
    )
    def get_job(identity: Identity, job_id: _JobId) -> Any:
        """One job: status, attempts, progress, times; arguments, result and error as for ``GET /jobs``."""
        jobs = jobs_in_use(ops)
        if jobs is None:
            raise _not_found(job_id)
        return job_view(jobs.get(job_id), details=details(identity))

    @router.get(
        "/queue/stats",
        summary="Queue statistics",
        response_model=StatsView,
        responses=problem_responses(503),
    )
    def queue_stats() -> Any:
        """Per queue: jobs per status, depth, the oldest due job's age, stalled leases; the workers."""
        jobs = jobs_in_use(ops)
        return (jobs.stats() if jobs is not None else Stats({})).to_dict()

    @router.get(
        "/schedules",
        summary="Schedules",
        response_model=list[ScheduleView],
        responses=problem_responses(422, 503),
    )
    def schedules(
        count: Annotated[int, Query(ge=1, le=50, description="Next fire times per schedule.")] = 3,
    ) -> Any:
        """The stored schedules: policies, last fire, next fire times (as ``buttress schedules``)."""
        jobs = jobs_in_use(ops)
        return describe_schedules(jobs, count=count) if jobs is not None else []

    return router


def jobs_admin_router(ops: Ops, route_class: type, require_admin: Any) -> APIRouter:
    responses = problem_responses(401, 404, 409, 422, 503)
    responses[409]["description"] = "The job's state does not allow it (the problem says which it is)."
    router = APIRouter(
        tags=["admin"],
        route_class=route_class,
        dependencies=[Depends(require_admin)],
        responses=responses,
    )

    def found(job_id: int) -> Jobs:
        jobs = jobs_in_use(ops)
        if jobs is None:
            raise _not_found(job_id)
        return jobs

    @router.post("/jobs/{job_id}/cancel", summary="Cancel a job", response_model=JobAction)
    def cancel(job_id: _JobId) -> JobAction:
        """A waiting job is cancelled at once (it never runs); a running one's worker is asked to stop it
        (answered ``running``). A job that already ended is a 409, except a cancelled one (idempotent)."""
        status = found(job_id).cancel(job_id)
        if status not in (JobStatus.CANCELLED, JobStatus.RUNNING):
            raise ConflictError(
                f"job {job_id} already ended {status.value}; only a waiting or running job can be cancelled",
                context={"job_id": job_id, "status": status.value},
            )
        _log.warning("job %s cancelled by admin (now %s)", job_id, status.value)
        return JobAction(id=job_id, status=status)

    @router.post("/jobs/{job_id}/retry", summary="Retry a job", response_model=JobAction)
    def retry(job_id: _JobId) -> JobAction:
        """Queue a failed, cancelled or dead job again with its attempts reset. A job that succeeded or
        is still running is a 409; one already waiting answers its state (idempotent)."""
        status = found(job_id).retry(job_id)
        if status in (JobStatus.RUNNING, JobStatus.SUCCEEDED):
            raise ConflictError(
                f"job {job_id} is {status.value}; only a failed, cancelled or dead job can be retried",
                context={"job_id": job_id, "status": status.value},
            )
        _log.warning("job %s retried by admin (now %s)", job_id, status.value)
        return JobAction(id=job_id, status=status)

    return router

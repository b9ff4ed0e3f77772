"""Every queue operation written once, as a plan: a generator of statements run in one transaction.

A plan yields :class:`Step` s and receives each one's answer (its rows, or its row count); the sync and
async drivers of :mod:`buttress.jobs._drive` run it on a connection, so SQLite and PostgreSQL, sync and
async, share one body. What differs between the databases is in :class:`Dialect`: PostgreSQL fetches
with ``FOR UPDATE SKIP LOCKED``, serialises bounded queues and concurrency limits with transaction-scoped
advisory locks and wakes workers with ``pg_notify``; SQLite serialises every writer at ``BEGIN
IMMEDIATE`` and wakes workers in the same process directly (others poll).
"""

from __future__ import annotations

import zlib
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar

from sqlalchemy import BindParameter, Executable, bindparam, text

from buttress.db import Plan, Step
from buttress.errors import NotFoundError, QueueFull
from buttress.jobs._info import COLUMNS, JobInfo
from buttress.jobs._limits import choose
from buttress.jobs._states import JobStatus
from buttress.jobs._tables import JOBS

__all__ = [
    "CANCEL_CHANNEL",
    "WAKE_CHANNEL",
    "Completion",
    "Dialect",
    "FetchRequest",
    "Leased",
    "NewJob",
    "Plan",
    "Step",
]

T = TypeVar("T")
WAKE_CHANNEL: Final = "buttress_jobs"
"""The NOTIFY channel a defer wakes idle PostgreSQL workers on (payload: the queue)."""
CANCEL_CHANNEL: Final = "buttress_jobs_cancel"
"""The NOTIFY channel a cancel of a running job is pushed on (payload: the job id)."""

_PENDING_SQL: Final = "('queued', 'scheduled', 'retrying')"
_ACTIVE_SQL: Final = "('queued', 'scheduled', 'running', 'retrying')"


@dataclass(frozen=True, slots=True)
class Dialect:
    """What differs between the two databases' queue statements."""

    name: str

    @property
    def postgres(self) -> bool:
        return self.name == "postgresql"

    @property
    def skip_locked(self) -> str:
        return " FOR UPDATE SKIP LOCKED" if self.postgres else ""


@dataclass(frozen=True, slots=True)
class NewJob:
    """A job to insert: what to run, where, when and under which key."""

    queue: str
    task: str
    args: str
    priority: int
    run_at: float
    max_attempts: int
    key: str | None = None
    timeout: float | None = None
    result_ttl: float | None = None
    schedule: str | None = None
    fire_at: float | None = None

    def row(self, now: float) -> dict[str, Any]:
        status = JobStatus.SCHEDULED if self.run_at > now else JobStatus.QUEUED
        return {
            "queue": self.queue,
            "task": self.task,
            "args": self.args,
            "priority": self.priority,
            "status": status.value,
            "run_at": self.run_at,
            "max_attempts": self.max_attempts,
            "idem_key": self.key,
            "timeout": self.timeout,
            "result_ttl": self.result_ttl,
            "created_at": now,
            "schedule": self.schedule,
            "fire_at": self.fire_at,
        }


@dataclass(frozen=True, slots=True)
class FetchRequest:
    """What one worker may lease now: its queues and tasks, free slots, and the limits to respect."""

    worker: str
    queues: tuple[str, ...]
    tasks: tuple[str, ...]
    slots: int
    lease: float
    task_limits: Mapping[str, int] = field(default_factory=dict)
    queue_limits: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Leased:
    """A job a worker now holds: ``token`` is the fencing token its completion must present."""

    id: int
    task: str
    queue: str
    args: str
    attempts: int
    max_attempts: int
    token: int
    timeout: float | None
    result_ttl: float | None
    priority: int
    created_at: float
    run_at: float


@dataclass(frozen=True, slots=True)
class Completion:
    """The end of one attempt, applied only while the job is still leased under ``token``."""

    id: int
    token: int
    status: JobStatus
    result: str | None = None
    error: str | None = None
    run_at: float | None = None
    expires_at: float | None = None
    progress: float | None = None
    message: str | None = None
    task: str = ""
    queue: str = ""

    def row(self, now: float) -> dict[str, Any]:
        """The values the completing UPDATE binds (a retry is not finished: no ``finished_at``)."""
        return {
            "id": self.id,
            "token": self.token,
            "status": self.status.value,
            "result": self.result,
            "error": self.error,
            "run_at": self.run_at,
            "finished_at": None if self.status is JobStatus.RETRYING else now,
            "expires_at": self.expires_at,
            "progress": self.progress,
            "message": self.message,
        }


def lock_key(name: str) -> int:
    """A stable 31-bit advisory-lock key for ``name`` (same in every process)."""
    return zlib.crc32(f"buttress.jobs:{name}".encode()) & 0x7FFFFFFF


_LOCK = text("SELECT pg_advisory_xact_lock(:key)")
_NOTIFY = text("SELECT pg_notify(:channel, :payload)")
_COUNT_PENDING = text(f"SELECT count(*) FROM buttress_jobs WHERE queue = :queue AND status IN {_PENDING_SQL}")
_INSERT_KEYED = text(
    "INSERT INTO buttress_jobs (queue, task, args, priority, status, run_at, max_attempts, idem_key, "
    "timeout, result_ttl, created_at, schedule, fire_at) "
    "VALUES (:queue, :task, :args, :priority, :status, :run_at, "
    ":max_attempts, :idem_key, :timeout, :result_ttl, :created_at, :schedule, :fire_at) "
    f"ON CONFLICT (idem_key) WHERE idem_key IS NOT NULL AND status IN {_ACTIVE_SQL} DO NOTHING RETURNING id"
)
_ACTIVE_OF_KEY = text(f"SELECT id FROM buttress_jobs WHERE idem_key = :key AND status IN {_ACTIVE_SQL}")
_INSERT_MANY = JOBS.insert().returning(JOBS.c.id, sort_by_parameter_order=True)


def defer_plan(
    jobs: Sequence[NewJob], now: float, bounds: Mapping[str, int], dialect: Dialect
) -> Plan[list[int]]:
    """Insert ``jobs`` (a key already active folds into its job: that id comes back), all or none.

    ``bounds`` maps a queue to its ``max_size``: when the jobs would take it past that many pending jobs,
    ``QueueFull`` is raised and the transaction stores nothing.
    """
    adding = Counter(job.queue for job in jobs)
    for queue in sorted(set(adding) & set(bounds)):
        if dialect.postgres:
            yield Step(_LOCK, {"key": lock_key("queue:" + queue)})
        rows = yield Step(_COUNT_PENDING, {"queue": queue}, rows=True)
        pending = int(rows[0][0])
        if pending + adding[queue] > bounds[queue]:
            raise QueueFull(
                f"queue {queue!r} holds {pending} pending jobs of at most {bounds[queue]}; "
                f"{adding[queue]} more would overflow it (raise max_size or add workers)",
                context={
                    "queue": queue,
                    "pending": pending,
                    "max_size": bounds[queue],
                    "adding": adding[queue],
                },
            )
    ids: list[int | None] = [None] * len(jobs)
    plain = [index for index, job in enumerate(jobs) if job.key is None]
    if plain:
        rows = yield Step(_INSERT_MANY, [jobs[index].row(now) for index in plain], rows=True)
        for index, row in zip(plain, rows, strict=True):
            ids[index] = int(row[0])
    for index, job in enumerate(jobs):
        if job.key is None:
            continue
        ids[index] = yield from _insert_keyed(job, now)
    if dialect.postgres:
        for queue in sorted(adding):
            yield Step(_NOTIFY, {"channel": WAKE_CHANNEL, "payload": queue})
    return [int(job_id) for job_id in ids if job_id is not None]


def _insert_keyed(job: NewJob, now: float) -> Plan[int]:
    for _ in range(3):  # the active job of the key may finish between the two statements: try again
        rows = yield Step(_INSERT_KEYED, job.row(now), rows=True)
        if rows:
            return int(rows[0][0])
        rows = yield Step(_ACTIVE_OF_KEY, {"key": job.key}, rows=True)
        if rows:
            return int(rows[0][0])
    raise RuntimeError(f"the key {job.key!r} neither inserted nor found active after three tries")


_LEASED = (
    "id, task, queue, args, attempts, max_attempts, lease_token, timeout, result_ttl, priority, "
    "created_at, run_at"
)
_LEASE_SET = (
    "UPDATE buttress_jobs SET status = 'running', attempts = attempts + 1, lease_token = lease_token + 1, "
    "lease_expires = :expires, worker = :worker, started_at = :now, cancel_requested = 0, progress = NULL, "
    "message = NULL"
)


def _fetch_clause(dialect: Dialect) -> Executable:
    return text(
        f"{_LEASE_SET} WHERE id IN (SELECT id FROM buttress_jobs WHERE status IN {_PENDING_SQL} "
        "AND run_at <= :now AND queue IN :queues AND task IN :tasks ORDER BY priority DESC, id "
        f"LIMIT :slots{dialect.skip_locked}) RETURNING {_LEASED}"
    ).bindparams(bindparam("queues", expanding=True), bindparam("tasks", expanding=True))


def _candidates_clause(dialect: Dialect) -> Executable:
    return text(
        f"SELECT id, task, queue FROM buttress_jobs WHERE status IN {_PENDING_SQL} AND run_at <= :now "
        "AND queue IN :queues AND task IN :tasks ORDER BY priority DESC, id "
        f"LIMIT :window{dialect.skip_locked}"
    ).bindparams(bindparam("queues", expanding=True), bindparam("tasks", expanding=True))


_RUNNING_COUNTS = text(
    "SELECT task, queue, count(*) FROM buttress_jobs WHERE status = 'running' "
    "AND (task IN :tasks OR queue IN :queues) GROUP BY task, queue"
).bindparams(bindparam("tasks", expanding=True), bindparam("queues", expanding=True))
_LEASE_IDS = text(
    f"{_LEASE_SET} WHERE id IN :ids AND status IN {_PENDING_SQL} RETURNING {_LEASED}"
).bindparams(bindparam("ids", expanding=True))
_FETCH = {name: _fetch_clause(Dialect(name)) for name in ("postgresql", "sqlite")}
_CANDIDATES = {name: _candidates_clause(Dialect(name)) for name in ("postgresql", "sqlite")}


def fetch_plan(
    request: FetchRequest, completions: Sequence[Completion], now: float, dialect: Dialect
) -> Plan[list[Leased]]:
    """Apply ``completions``, then lease up to ``request.slots`` due jobs, highest priority first.

    Without concurrency limits one statement leases the jobs. With them, the running jobs are counted
    under an advisory lock every limited fetch takes (on SQLite the write lock does it), so limits hold
    across every worker on every machine.
    """
    yield from complete_steps(completions, now)
    if request.slots <= 0 or not request.tasks or not request.queues:
        return []
    lease = {"now": now, "expires": now + request.lease, "worker": request.worker}
    scope = {"queues": list(request.queues), "tasks": list(request.tasks)}
    if not request.task_limits and not request.queue_limits:
        rows = yield Step(_FETCH[dialect.name], {**lease, **scope, "slots": request.slots}, rows=True)
    else:
        if dialect.postgres:
            yield Step(_LOCK, {"key": lock_key("limits")})
        counts = yield Step(
            _RUNNING_COUNTS,
            {"tasks": list(request.task_limits) or [""], "queues": list(request.queue_limits) or [""]},
            rows=True,
        )
        window = request.slots * 4 + sum(request.task_limits.values()) + sum(request.queue_limits.values())
        candidates = yield Step(_CANDIDATES[dialect.name], {"now": now, **scope, "window": window}, rows=True)
        chosen = choose(
            [(int(row[0]), row[1], row[2]) for row in candidates],
            running=[(row[0], row[1], int(row[2])) for row in counts],
            task_limits=request.task_limits,
            queue_limits=request.queue_limits,
            slots=request.slots,
        )
        if not chosen:
            return []
        rows = yield Step(_LEASE_IDS, {**lease, "ids": chosen}, rows=True)
    leased = [
        Leased(
            id=int(row[0]),
            task=row[1],
            queue=row[2],
            args=row[3],
            attempts=row[4],
            max_attempts=row[5],
            token=row[6],
            timeout=row[7],
            result_ttl=row[8],
            priority=row[9],
            created_at=row[10],
            run_at=row[11],
        )
        for row in rows
    ]
    leased.sort(key=lambda job: (-job.priority, job.id))
    return leased


_COMPLETE = text(
    "UPDATE buttress_jobs SET status = :status, result = :result, error = :error, "
    "run_at = COALESCE(:run_at, run_at), finished_at = :finished_at, expires_at = :expires_at, "
    "lease_expires = NULL, progress = COALESCE(:progress, progress), message = COALESCE(:message, message) "
    "WHERE id = :id AND lease_token = :token AND status = 'running'"
)


def complete_steps(completions: Sequence[Completion], now: float) -> Plan[int]:
    """Record finished attempts; the count applied (a completion whose lease was lost is a no-op)."""
    if not completions:
        return 0
    params = [done.row(now) for done in completions]
    applied = yield Step(_COMPLETE, params)
    return int(applied)


def complete_plan(completions: Sequence[Completion], now: float) -> Plan[int]:
    """:func:`complete_steps` as a plan of its own."""
    return (yield from complete_steps(completions, now))


_RELEASE = text(
    "UPDATE buttress_jobs SET status = 'queued', attempts = attempts - 1, lease_expires = NULL, "
    "worker = NULL, run_at = :now WHERE id = :id AND lease_token = :token AND status = 'running'"
)


def release_plan(held: Sequence[tuple[int, int]], now: float, dialect: Dialect) -> Plan[int]:
    """Give jobs back to the queue unrun (a stopping worker's), their attempt not counted."""
    if not held:
        return 0
    released = yield Step(_RELEASE, [{"id": job_id, "token": token, "now": now} for job_id, token in held])
    if dialect.postgres:
        yield Step(_NOTIFY, {"channel": WAKE_CHANNEL, "payload": ""})
    return int(released)


_RENEW = text(
    "UPDATE buttress_jobs SET lease_expires = :expires WHERE worker = :worker AND status = 'running' "
    "RETURNING id, lease_token, cancel_requested"
)
_BEAT = text("UPDATE buttress_job_workers SET heartbeat_at = :now WHERE id = :worker")


def heartbeat_plan(worker: str, now: float, lease: float) -> Plan[list[tuple[int, int, bool]]]:
    """Renew every lease ``worker`` still holds; the (id, token, cancel requested) of each one kept."""
    rows = yield Step(_RENEW, {"worker": worker, "expires": now + lease}, rows=True)
    yield Step(_BEAT, {"worker": worker, "now": now})
    return [(int(row[0]), int(row[1]), bool(row[2])) for row in rows]


_CANCEL_REQUESTS = text(
    "SELECT id FROM buttress_jobs WHERE worker = :worker AND status = 'running' AND cancel_requested = 1"
)


def cancel_requests_plan(worker: str) -> Plan[list[int]]:
    """The running jobs of ``worker`` someone asked to cancel."""
    rows = yield Step(_CANCEL_REQUESTS, {"worker": worker}, rows=True)
    return [int(row[0]) for row in rows]


_PROGRESS = text(
    "UPDATE buttress_jobs SET progress = :progress, message = :message "
    "WHERE id = :id AND lease_token = :token AND status = 'running'"
)


def progress_plan(updates: Sequence[tuple[int, int, float, str | None]]) -> Plan[int]:
    """Store the latest progress of running jobs (id, token, fraction, message)."""
    if not updates:
        return 0
    params = [{"id": i, "token": t, "progress": p, "message": m} for i, t, p, m in updates]
    return int((yield Step(_PROGRESS, params)))


_RECLAIM = text(
    "UPDATE buttress_jobs SET "
    "status = CASE WHEN cancel_requested = 1 THEN 'cancelled' WHEN attempts >= max_attempts THEN 'dead' "
    "ELSE 'retrying' END, "
    "finished_at = CASE WHEN cancel_requested = 1 OR attempts >= max_attempts THEN :now ELSE NULL END, "
    "expires_at = CASE WHEN cancel_requested = 1 OR attempts >= max_attempts "
    "THEN :now + COALESCE(result_ttl, :ttl) ELSE NULL END, "
    "error = 'lease expired: worker ' || COALESCE(worker, '?') || ' stopped renewing it', "
    "run_at = :now, lease_expires = NULL "
    "WHERE status = 'running' AND lease_expires < :now RETURNING id, status, task, queue"
)
_PURGE_EXPIRED = text("DELETE FROM buttress_jobs WHERE expires_at < :now")
_FORGET_WORKERS = text("DELETE FROM buttress_job_workers WHERE heartbeat_at < :before")


@dataclass(frozen=True, slots=True)
class Swept:
    """What one sweep did: jobs taken back from silent workers (id, new status), rows past their TTL."""

    reclaimed: list[tuple[int, JobStatus, str, str]]
    purged: int


def sweep_plan(now: float, ttl: float, forget_after: float, dialect: Dialect) -> Plan[Swept]:
    """Take back running jobs whose lease expired, delete finished jobs past their TTL, forget old workers."""
    rows = yield Step(_RECLAIM, {"now": now, "ttl": ttl}, rows=True)
    purged = yield Step(_PURGE_EXPIRED, {"now": now})
    yield Step(_FORGET_WORKERS, {"before": now - forget_after})
    reclaimed = [(int(row[0]), JobStatus(row[1]), row[2], row[3]) for row in rows]
    if dialect.postgres and any(status is JobStatus.RETRYING for _, status, _, _ in reclaimed):
        yield Step(_NOTIFY, {"channel": WAKE_CHANNEL, "payload": ""})
    return Swept(reclaimed, int(purged))


_CANCEL_PENDING = text(
    "UPDATE buttress_jobs SET status = 'cancelled', cancel_requested = 1, finished_at = :now, "
    f"expires_at = :now + COALESCE(result_ttl, :ttl) WHERE id = :id AND status IN {_PENDING_SQL}"
)
_CANCEL_RUNNING = text("UPDATE buttress_jobs SET cancel_requested = 1 WHERE id = :id AND status = 'running'")
_STATUS_OF = text("SELECT status FROM buttress_jobs WHERE id = :id")


def cancel_plan(job_id: int, now: float, ttl: float, dialect: Dialect) -> Plan[JobStatus]:
    """Cancel a job: a pending one at once (it will never run), a running one by request to its worker.

    Returns ``cancelled`` for a pending job, ``running`` when the worker was asked to stop it, and the
    final status of a job that had already finished (nothing changes then).
    """
    if (yield Step(_CANCEL_PENDING, {"id": job_id, "now": now, "ttl": ttl})):
        return JobStatus.CANCELLED
    if (yield Step(_CANCEL_RUNNING, {"id": job_id})):
        if dialect.postgres:
            yield Step(_NOTIFY, {"channel": CANCEL_CHANNEL, "payload": str(job_id)})
        return JobStatus.RUNNING
    rows = yield Step(_STATUS_OF, {"id": job_id}, rows=True)
    if not rows:
        raise NotFoundError("job", job_id)
    return JobStatus(rows[0][0])


_RETRY = text(
    "UPDATE buttress_jobs SET status = 'queued', run_at = :now, attempts = 0, cancel_requested = 0, "
    "error = NULL, result = NULL, finished_at = NULL, expires_at = NULL, progress = NULL, message = NULL, "
    "worker = NULL, lease_expires = NULL WHERE id = :id AND status IN ('failed', 'cancelled', 'dead')"
)


def retry_plan(job_id: int, now: float, dialect: Dialect) -> Plan[JobStatus]:
    """Queue a failed, cancelled or dead job again with its attempts reset; its status afterwards."""
    if (yield Step(_RETRY, {"id": job_id, "now": now})):
        if dialect.postgres:
            yield Step(_NOTIFY, {"channel": WAKE_CHANNEL, "payload": ""})
        return JobStatus.QUEUED
    rows = yield Step(_STATUS_OF, {"id": job_id}, rows=True)
    if not rows:
        raise NotFoundError("job", job_id)
    return JobStatus(rows[0][0])


_GET = text(f"SELECT {COLUMNS} FROM buttress_jobs WHERE id = :id")


def get_plan(job_id: int, now: float) -> Plan[JobInfo | None]:
    """The job with ``job_id``, or None."""
    rows = yield Step(_GET, {"id": job_id}, rows=True)
    return JobInfo.from_row(rows[0], now) if rows else None


def list_plan(
    now: float,
    *,
    statuses: Sequence[JobStatus] = (),
    queue: str | None = None,
    task: str | None = None,
    before_id: int | None = None,
    limit: int = 50,
) -> Plan[list[JobInfo]]:
    """Jobs newest first, filtered by stored status, queue and task; ``before_id`` pages."""
    where = ["1 = 1"]
    params: dict[str, Any] = {"limit": limit}
    clause_params: list[BindParameter[Any]] = []
    if statuses:
        where.append("status IN :statuses")
        params["statuses"] = [status.value for status in statuses]
        clause_params.append(bindparam("statuses", expanding=True))
    for name, value in (("queue", queue), ("task", task)):
        if value is not None:
            where.append(f"{name} = :{name}")
            params[name] = value
    if before_id is not None:
        where.append("id < :before_id")
        params["before_id"] = before_id
    clause = text(
        f"SELECT {COLUMNS} FROM buttress_jobs WHERE {' AND '.join(where)} ORDER BY id DESC LIMIT :limit"
    ).bindparams(*clause_params)
    rows = yield Step(clause, params, rows=True)
    return [JobInfo.from_row(row, now) for row in rows]


_STATS = text(
    "SELECT queue, status, count(*), "
    f"min(CASE WHEN status IN {_PENDING_SQL} AND run_at <= :now THEN run_at END), "
    "count(CASE WHEN status = 'running' AND lease_expires < :now THEN 1 END) "
    "FROM buttress_jobs GROUP BY queue, status"
)
_WORKERS = text(
    "SELECT id, host, pid, queues, concurrency, started_at, heartbeat_at "
    "FROM buttress_job_workers ORDER BY id"
)


def stats_plan(now: float) -> Plan[tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]]:
    """Counts per (queue, status) with the oldest due run_at and stalled leases, and the live workers."""
    counts = yield Step(_STATS, {"now": now}, rows=True)
    workers = yield Step(_WORKERS, rows=True)
    return [tuple(row) for row in counts], [tuple(row) for row in workers]


_REGISTER = text(
    "INSERT INTO buttress_job_workers (id, host, pid, queues, concurrency, started_at, heartbeat_at) "
    "VALUES (:id, :host, :pid, :queues, :concurrency, :now, :now) ON CONFLICT (id) DO UPDATE SET "
    "host = excluded.host, pid = excluded.pid, queues = excluded.queues, concurrency = excluded.concurrency, "
    "started_at = excluded.started_at, heartbeat_at = excluded.heartbeat_at"
)
_UNREGISTER = text("DELETE FROM buttress_job_workers WHERE id = :id")


def register_worker_plan(row: Mapping[str, Any]) -> Plan[None]:
    """Record a starting worker: id, host, pid, queues, concurrency, now (its heartbeat keeps it fresh)."""
    yield Step(_REGISTER, row)


def unregister_worker_plan(worker: str) -> Plan[None]:
    """Remove a worker that stopped cleanly."""
    yield Step(_UNREGISTER, {"id": worker})


def purge_plan(statuses: Sequence[JobStatus], finished_before: float) -> Plan[int]:
    """Delete finished jobs of ``statuses`` that finished before ``finished_before``; how many."""
    clause = text("DELETE FROM buttress_jobs WHERE status IN :statuses AND finished_at < :before").bindparams(
        bindparam("statuses", expanding=True)
    )
    return int((yield Step(clause, {"statuses": [s.value for s in statuses], "before": finished_before})))

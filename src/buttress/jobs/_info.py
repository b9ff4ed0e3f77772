"""What one job row says, as the API, the ops server and the CLI show it."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Final

from buttress.jobs._payload import load, load_args
from buttress.jobs._states import FINISHED, JobStatus

__all__ = ["COLUMNS", "JobInfo"]

COLUMNS: Final = (
    "id, queue, task, args, priority, status, run_at, attempts, max_attempts, lease_token, lease_expires, "
    "worker, idem_key, progress, message, result, error, cancel_requested, created_at, started_at, "
    "finished_at, expires_at, schedule, fire_at"
)
"""The columns :meth:`JobInfo.from_row` reads, in its order."""


@dataclass(frozen=True, slots=True)
class JobInfo:
    """One job: where it is, what it was asked to do and what came of it (times in epoch seconds).

    ``status`` is the stored state, except that a ``scheduled`` or ``retrying`` job whose time has come
    reads ``queued``: it is waiting for a worker, not for the clock.
    """

    id: int
    task: str
    queue: str
    status: JobStatus
    priority: int
    args: list[Any]
    kwargs: dict[str, Any]
    attempts: int
    max_attempts: int
    run_at: float
    created_at: float
    started_at: float | None
    finished_at: float | None
    expires_at: float | None
    progress: float | None
    message: str | None
    result: Any
    error: str | None
    worker: str | None
    lease_expires: float | None
    lease_token: int
    key: str | None
    cancel_requested: bool
    schedule: str | None
    fire_at: float | None

    @classmethod
    def from_row(cls, row: Any, now: float) -> JobInfo:
        """The job of a row of :data:`COLUMNS`; ``now`` decides whether a delayed job is due."""
        (
            id_, queue, task, args, priority, status, run_at, attempts, max_attempts, token, lease_expires,
            worker, key, progress, message, result, error, cancel, created, started, finished, expires,
            schedule, fire_at,
        ) = tuple(row)  # fmt: skip
        state = JobStatus(status)
        if state in (JobStatus.SCHEDULED, JobStatus.RETRYING) and run_at <= now:
            state = JobStatus.QUEUED
        positional, keywords = load_args(args)
        return cls(
            id=int(id_), task=task, queue=queue, status=state, priority=priority, args=positional,
            kwargs=keywords, attempts=attempts, max_attempts=max_attempts, run_at=run_at, created_at=created,
            started_at=started, finished_at=finished, expires_at=expires, progress=progress, message=message,
            result=load(result), error=error, worker=worker, lease_expires=lease_expires, lease_token=token,
            key=key, cancel_requested=bool(cancel), schedule=schedule, fire_at=fire_at,
        )  # fmt: skip

    @property
    def finished(self) -> bool:
        """Whether the job reached a final state (until someone retries it)."""
        return self.status in FINISHED

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (the ops API's shape)."""
        data = asdict(self)
        data["status"] = self.status.value
        return data

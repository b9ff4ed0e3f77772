"""The handle ``defer`` returns: a job's id, and ways to read its status, wait for its result or cancel it."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

from buttress.errors import ButtressError, DeadlineExceeded, NotFoundError
from buttress.jobs._states import JobStatus

if TYPE_CHECKING:
    from buttress.jobs._info import JobInfo
    from buttress.jobs._jobs import Jobs

__all__ = ["JobFailed", "JobHandle"]

_FIRST_POLL = 0.005
_MAX_POLL = 0.1


class JobFailed(ButtressError):
    """A job waited for ended without a result: failed, dead or cancelled (``context["status"]``)."""

    default_code = "job_failed"
    default_status = 500
    title = "Job failed"


class JobHandle:
    """One deferred job: ``id``; ``info``, ``status``, ``wait``, ``result``, ``cancel``, a* twins.

    Waiting polls the database (5 ms growing to 100 ms), so a handle works from any process.
    """

    def __init__(self, job_id: int, jobs: Jobs, task: str, *, settled: JobInfo | None = None) -> None:
        self.id = job_id
        self.task = task
        self._jobs = jobs
        self._settled = settled  # eager mode: the finished job, never stored

    def __repr__(self) -> str:
        return f"<JobHandle {self.id} {self.task!r}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, JobHandle) and other.id == self.id and other._jobs is self._jobs

    def __hash__(self) -> int:
        return hash(self.id)

    def info(self) -> JobInfo:
        """The job as stored now; ``NotFoundError`` once it was purged."""
        if self._settled is not None:
            return self._settled
        return self._jobs.get(self.id)

    async def ainfo(self) -> JobInfo:
        """Async :meth:`info`."""
        if self._settled is not None:
            return self._settled
        return await self._jobs.aget(self.id)

    def status(self) -> JobStatus:
        """The job's status now."""
        return self.info().status

    async def astatus(self) -> JobStatus:
        """Async :meth:`status`."""
        return (await self.ainfo()).status

    def wait(self, timeout: float | None = None) -> JobInfo:
        """Block until the job finished (succeeded, failed, cancelled, dead).

        ``DeadlineExceeded`` when it has not after ``timeout`` seconds.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        pause = _FIRST_POLL
        while True:
            info = self.info()
            if info.finished:
                return info
            pause = self._pause(deadline, pause)
            time.sleep(pause)

    async def await_(self, timeout: float | None = None) -> JobInfo:  # noqa: ASYNC109 - mirrors wait()
        """Async :meth:`wait`."""
        deadline = None if timeout is None else time.monotonic() + timeout
        pause = _FIRST_POLL
        while True:
            info = await self.ainfo()
            if info.finished:
                return info
            pause = self._pause(deadline, pause)
            await asyncio.sleep(pause)

    def __await__(self) -> Any:
        """``await handle``: :meth:`await_` without a timeout."""
        return self.await_().__await__()

    def _pause(self, deadline: float | None, pause: float) -> float:
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise DeadlineExceeded(
                    f"job {self.id} ({self.task}) did not finish in time", context={"job_id": self.id}
                )
            pause = min(pause, left)
        return min(pause * 1.5, _MAX_POLL)

    def result(self, timeout: float | None = None) -> Any:
        """Wait for the job and return its result; ``JobFailed`` when it failed, died or was cancelled."""
        return _result_of(self.wait(timeout))

    async def aresult(self, timeout: float | None = None) -> Any:  # noqa: ASYNC109 - mirrors result()
        """Async :meth:`result`."""
        return _result_of(await self.await_(timeout))

    def cancel(self) -> JobStatus:
        """Cancel the job; see :meth:`Jobs.cancel`."""
        if self._settled is not None:
            return self._settled.status
        return self._jobs.cancel(self.id)

    async def acancel(self) -> JobStatus:
        """Async :meth:`cancel`."""
        if self._settled is not None:
            return self._settled.status
        return await self._jobs.acancel(self.id)


def _result_of(info: JobInfo) -> Any:
    if info.status is JobStatus.SUCCEEDED:
        return info.result
    raise JobFailed(
        f"job {info.id} ({info.task}) ended {info.status.value}: {info.error or 'no error recorded'}",
        context={"job_id": info.id, "status": info.status.value, "task": info.task},
    )


def missing(job_id: int) -> NotFoundError:
    """The error for a job id the store does not hold."""
    return NotFoundError(
        "job", job_id, message=f"no job {job_id}: it never existed or was purged after its result TTL"
    )

"""A job worker for users' tests: in this process, on a throwaway SQLite database, drained on demand.

:func:`job_worker` makes the process's :class:`~buttress.jobs.Jobs` (what ``task.defer()`` and
``get_jobs()`` reach) a queue on a temporary SQLite file and runs a :class:`~buttress.jobs.Worker` on it in
a background thread, so a test defers as the app does and then waits with :meth:`JobWorker.drain` until
every due job ran. The pytest fixture ``job_worker`` (:mod:`buttress.testing.pytest_plugin`) wraps it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Final

from buttress.config import get_settings
from buttress.container import get_container
from buttress.db import Database
from buttress.jobs import JobInfo, Jobs, JobStatus, Worker

__all__ = ["JobWorker", "job_worker"]

_FAST: Final = {"poll_interval": 0.005, "cancel_poll_interval": 0.02, "grace": 5.0, "eager": False}
_BUSY: Final = (JobStatus.QUEUED, JobStatus.RUNNING)
_ACTIVE: Final = ["queued", "scheduled", "running", "retrying"]
"""Stored states of jobs not finished; a due scheduled or retrying job reads ``queued`` (see JobInfo)."""


class JobWorker:
    """A running worker and its queue: ``jobs`` (also what ``get_jobs()`` returns meanwhile), ``worker``.

    :meth:`drain` waits until no job is due or running; a job deferred with a delay (or retrying after a
    backoff) is not due yet, so it does not hold a drain up.
    """

    def __init__(self, jobs: Jobs, worker: Worker) -> None:
        self.jobs = jobs
        self.worker = worker

    def __repr__(self) -> str:
        return f"<JobWorker {self.worker!r} on {self.jobs!r}>"

    def _busy(self, found: Sequence[JobInfo]) -> list[JobInfo]:
        return [info for info in found if info.status in _BUSY]

    def _timed_out(self, busy: Sequence[JobInfo], timeout: float) -> TimeoutError:
        served = set(self.worker.task_names)
        lines = []
        for info in busy[:10]:
            why = ""
            if info.task not in served:
                why = " (this worker does not know its type: import its module before the fixture starts)"
            elif info.queue not in self.worker.queues:
                why = f" (this worker runs queues {', '.join(self.worker.queues)} only)"
            lines.append(f"job {info.id} {info.task} on {info.queue!r} is {info.status.value}{why}")
        return TimeoutError(f"{len(busy)} jobs still due or running after {timeout:g} s: " + "; ".join(lines))

    def drain(self, timeout: float = 10.0) -> None:
        """Block until no job is due or running; ``TimeoutError`` naming the jobs left after ``timeout`` s."""
        deadline = time.monotonic() + timeout
        pause = 0.002
        while True:
            busy = self._busy(self.jobs.list(status=_ACTIVE, limit=1000))
            if not busy:
                return
            if time.monotonic() >= deadline:
                raise self._timed_out(busy, timeout)
            time.sleep(pause)
            pause = min(pause * 2, 0.05)

    async def adrain(self, timeout: float = 10.0) -> None:  # noqa: ASYNC109 - mirrors drain()
        """Async :meth:`drain`."""
        deadline = time.monotonic() + timeout
        pause = 0.002
        while True:
            busy = self._busy(await self.jobs.alist(status=_ACTIVE, limit=1000))
            if not busy:
                return
            if time.monotonic() >= deadline:
                raise self._timed_out(busy, timeout)
            await asyncio.sleep(pause)
            pause = min(pause * 2, 0.05)


@contextmanager
def job_worker(
    path: Path,
    *,
    queues: Sequence[str] | None = None,
    concurrency: int | None = None,
) -> Iterator[JobWorker]:
    """A worker on a new SQLite database at ``path`` for the block; ``get_jobs()`` is its queue meanwhile.

    ``queues`` (default: every queue of the job types defined so far) and ``concurrency`` as for
    ``buttress worker``. Other job settings come from the process's (``BUTTRESS_JOBS__*``), with short
    polls and eager mode off: this is the real queue, run here.
    """
    settings = get_settings().jobs.model_copy(update=_FAST)
    db = Database(f"sqlite:///{path}")
    try:
        jobs = Jobs(db, settings=settings)
        with get_container().override(Jobs, jobs):
            worker = jobs.worker(queues=queues, concurrency=concurrency)
            with worker.running():
                yield JobWorker(jobs, worker)
    finally:
        db.close()

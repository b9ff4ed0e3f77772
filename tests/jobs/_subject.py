"""The subject of the jobs conformance suite: one queue on SQLite or PostgreSQL, driven sync or async.

Each subject has a registry of its own (so job names never collide across tests), a FakeClock that
stamps and leases jobs, and an event loop for the async calls and the worker.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from buttress.clock import FakeClock
from buttress.config import DbSettings, JobsSettings
from buttress.db import Database
from buttress.events import EventBus
from buttress.jobs import JobHandle, JobInfo, Jobs, JobStatus, Registry, Task
from buttress.observe.metrics import MetricsRegistry

T = TypeVar("T")
MODES = ["sync", "async"]


async def aiosqlite_threads_ended() -> None:
    """aiosqlite (0.22) stops the thread of a connection that failed to open with a future nobody awaits: the
    thread posts its answer to the loop later, and fails if the loop was closed meanwhile."""
    deadline = time.monotonic() + 5
    while any(t.name.endswith("(_connection_worker_thread)") for t in threading.enumerate()):
        assert time.monotonic() < deadline, "aiosqlite's connection threads did not stop"
        await asyncio.sleep(0.01)


class Subject:
    """A job queue under test; ``mode`` picks the sync or the async twin of every call."""

    def __init__(self, url: str, mode: str, *, db: DbSettings | None = None, **settings: Any) -> None:
        self.mode = mode
        self.suffix = uuid.uuid4().hex[:8]
        self.queue = f"q-{self.suffix}"
        self.loop = asyncio.new_event_loop()
        self.clock = FakeClock()
        self.registry = Registry()
        self.bus = EventBus()
        self.metrics = MetricsRegistry()
        self.db = Database(url, settings=db)
        self.jobs = Jobs(
            self.db,
            settings=JobsSettings(**{"poll_interval": 0.01, **settings}),
            clock=self.clock,
            registry=self.registry,
            events=self.bus,
            metrics=self.metrics,
        )
        self.jobs.ensure_schema()

    # -- definitions --------------------------------------------------------------------------------

    def task(self, fn: Callable[..., Any], **options: Any) -> Task[..., Any]:
        """``fn`` as a job type of this subject's registry (its name and queue unique to the subject)."""
        options = {"name": f"{fn.__name__}-{self.suffix}", "queue": self.queue, **options}
        return Task(fn, registry=self.registry, **options)

    # -- the twins ----------------------------------------------------------------------------------

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coro)

    def defer(self, task: Task[..., Any], *args: Any, **kwargs: Any) -> JobHandle:
        return self.defer_with(task, {}, *args, **kwargs)

    def defer_with(
        self, task: Task[..., Any], options: dict[str, Any], *args: Any, **kwargs: Any
    ) -> JobHandle:
        deferral = task.configure(jobs=self.jobs, **options)
        if self.mode == "sync":
            return deferral.defer(*args, **kwargs)
        return self.run(deferral.adefer(*args, **kwargs))

    def defer_many(self, task: Task[..., Any], calls: list[Any], **options: Any) -> list[JobHandle]:
        deferral = task.configure(jobs=self.jobs, **options)
        if self.mode == "sync":
            return deferral.defer_many(calls)
        return self.run(deferral.adefer_many(calls))

    def info(self, handle: JobHandle) -> JobInfo:
        return handle.info() if self.mode == "sync" else self.run(handle.ainfo())

    def get(self, job_id: int) -> JobInfo:
        return self.jobs.get(job_id) if self.mode == "sync" else self.run(self.jobs.aget(job_id))

    def list(self, **filters: Any) -> list[JobInfo]:
        return self.jobs.list(**filters) if self.mode == "sync" else self.run(self.jobs.alist(**filters))

    def cancel(self, job_id: int) -> JobStatus:
        return self.jobs.cancel(job_id) if self.mode == "sync" else self.run(self.jobs.acancel(job_id))

    def retry(self, job_id: int) -> JobStatus:
        return self.jobs.retry(job_id) if self.mode == "sync" else self.run(self.jobs.aretry(job_id))

    def purge(self, **options: Any) -> int:
        return self.jobs.purge(**options) if self.mode == "sync" else self.run(self.jobs.apurge(**options))

    def stats(self) -> Any:
        return self.jobs.stats() if self.mode == "sync" else self.run(self.jobs.astats())

    def work(self, *, concurrency: int = 4, **options: Any) -> None:
        """Run a worker until nothing is due and nothing runs (burst)."""
        worker = self.jobs.worker(concurrency=concurrency, **options)
        self.run(worker.run(burst=True))

    def count(self, where: str = "1 = 1") -> int:
        from sqlalchemy import text

        with self.db.engine.connect() as connection:
            return int(
                connection.execute(text(f"SELECT count(*) FROM buttress_jobs WHERE {where}")).scalar_one()
            )

    def close(self) -> None:
        self.bus.close()
        self.run(self.db.aclose())  # both pools, the async one on the loop its connections belong to
        self.run(aiosqlite_threads_ended())
        self.loop.close()

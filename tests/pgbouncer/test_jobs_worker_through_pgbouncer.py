"""A real worker process whose database is behind PgBouncer (transaction mode), its LISTEN direct.

A job deferred through the pooler is picked up by NOTIFY, not by a poll: with LISTEN an idle worker looks
for work only once a second, and each job here is deferred as the worker has just gone idle after the one
before, so a poll would find it close to a second later; five pickups each under 0.3 s are wake-ups.
Without ``jobs.listen_url`` a pooled worker opens no LISTEN (it would listen on a server session the
pooler hands to others) and finds work by polling.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import tests.jobs._proc_jobs as jobs_module
from buttress.config import DbSettings, JobsSettings
from buttress.db import Database
from buttress.jobs import Jobs, Registry, Task
from tests._fresh_db import fresh_postgres
from tests._pgbouncer import PgBouncer
from tests.jobs._procs import Procs, wait_for

POOLED = DbSettings(pooler="pgbouncer")


@pytest.fixture
def procs(pgbouncer: PgBouncer, direct_url: str, tmp_path: Path) -> Iterator[tuple[Procs, str]]:
    """The worker-process harness on a fresh database (its reads: direct) and the database's pooled URL."""
    with fresh_postgres(direct_url, "buttress_pgb_procs") as url:
        harness = Procs("postgresql", url, tmp_path)
        try:
            yield harness, pgbouncer.url(url)
        finally:
            harness.close()


def test_a_worker_behind_pgbouncer_is_woken_by_notify_on_its_direct_listen(procs: tuple[Procs, str]) -> None:
    harness, pooled = procs
    harness.url = pooled  # the worker's database: through the pooler
    direct = harness.db.urls.sync.render_as_string(hide_password=False)
    worker = harness.start(concurrency=2, db={"pooler": "pgbouncer"}, poll_interval=5.0, listen_url=direct)
    harness.wait_registered(worker)
    database = Database(pooled, settings=POOLED)
    try:
        quick = jobs_module.quick.configure(jobs=Jobs(database, settings=JobsSettings(auto_migrate=False)))
        pickups = []
        for n in range(5):
            deferred_at = time.time()
            handle = quick.defer()
            wait_for(lambda: harness.lines("start", handle.id), 10, f"job {n} starting")  # noqa: B023
            pickups.append(harness.lines("start", handle.id)[0].at - deferred_at)
            assert handle.wait(timeout=10).status.value == "succeeded"
        assert max(pickups) < 0.3, pickups
    finally:
        database.close()
    assert worker.alive(), worker.log()
    assert "LISTEN connection lost" not in worker.log()


def test_without_a_listen_url_a_pooled_worker_polls_and_says_so(
    fresh_pair: tuple[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    pooled, _ = fresh_pair
    database = Database(pooled, settings=POOLED)
    registry = Registry()
    jobs = Jobs(database, settings=JobsSettings(poll_interval=0.01), registry=registry)
    try:
        jobs.ensure_schema()
        done: list[int] = []
        task: Task[[int], None] = Task(done.append, name="polled-append", queue="polled", registry=registry)
        worker = jobs.worker(queues=["polled"])
        assert worker._listen_at is None
        task.configure(jobs=jobs).defer(7)
        asyncio.run(worker.run(burst=True))
        assert done == [7]
        assert "db.pooler is set and jobs.listen_url is not" in caplog.text
    finally:
        database.close()

"""The jobs' metrics move with a real worker run, and the ``jobs`` health check tells a stalled lease, a
backlog nobody works on and a live worker apart, on SQLite and PostgreSQL.

Time is a FakeClock: the backlog gauges refresh at most every 10 s of it, and leases expire by it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from tests.jobs._support import db_url, make_jobs, module_pg_url, sql

from buttress.clock import FakeClock
from buttress.config import Settings
from buttress.container import Container
from buttress.health_types import CheckResult
from buttress.jobs import Jobs, JobStatus, health_checks, job
from buttress.observe.health import HealthRegistry
from buttress.observe.metrics import MetricsRegistry

__all__ = ["db_url", "module_pg_url"]

QUEUE = "telemetry-q"
ASIDE = "telemetry-aside"
GATE = threading.Event()


@job(queue=QUEUE, name="telemetry.blocker")
def blocker() -> str:
    GATE.wait(30)
    return "released"


@job(queue=QUEUE, name="telemetry.quick")
async def quick(n: int) -> int:
    return n * 2


@job(queue=QUEUE, name="telemetry.boom", retry=1)
def boom() -> None:
    raise RuntimeError("boom")


def series(metrics: MetricsRegistry, name: str, **labels: str) -> dict[str, Any] | None:
    """The series of metric ``name`` with exactly ``labels``, or None when it was never set."""
    family = metrics.snapshot().get(name)
    for row in family["series"] if family else []:
        if row["labels"] == labels:
            return dict(row)
    return None


def value(metrics: MetricsRegistry, name: str, **labels: str) -> float | None:
    row = series(metrics, name, **labels)
    return None if row is None else float(row["value"])


def eventually(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait for ``condition`` (what a background worker does), failing after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_a_worker_run_moves_the_counters_the_histogram_and_the_backlog_gauges(db_url: str) -> None:
    clock = FakeClock()
    metrics = MetricsRegistry(clock=clock)
    jobs = make_jobs(db_url, clock=clock, metrics=metrics, lease=1.0)
    GATE.clear()
    try:
        held = blocker.configure(jobs=jobs).defer()
        doubled = quick.configure(jobs=jobs).defer_many([(1,), (2,)])
        failed = boom.configure(jobs=jobs).defer()
        aside = quick.configure(jobs=jobs, queue=ASIDE).defer(5)  # a queue no worker here serves
        assert value(metrics, "buttress_jobs_deferred_total", queue=QUEUE) == 4
        assert value(metrics, "buttress_jobs_deferred_total", queue=ASIDE) == 1
        worker = jobs.worker(queues=[QUEUE], concurrency=1)
        with worker.running():
            eventually(lambda: held.info().status is JobStatus.RUNNING)
            # The first sweep (a second in) finds the blocker running and three jobs behind it.
            eventually(lambda: value(metrics, "buttress_jobs_depth", queue=QUEUE) == 3)
            assert value(metrics, "buttress_jobs_depth", queue=ASIDE) == 1
            clock.advance(4)
            GATE.set()
            assert held.result(timeout=10) == "released"
            assert [h.result(timeout=10) for h in doubled] == [2, 4]
            assert failed.wait(timeout=10).status is JobStatus.DEAD
            clock.advance(11)  # the gauges refresh at most every 10 s
            # Drained: the queue's gauge goes back to 0 instead of keeping its last backlog.
            eventually(lambda: value(metrics, "buttress_jobs_depth", queue=QUEUE) == 0)
            assert value(metrics, "buttress_jobs_oldest_seconds", queue=QUEUE) == 0
            assert value(metrics, "buttress_jobs_depth", queue=ASIDE) == 1
            assert value(metrics, "buttress_jobs_oldest_seconds", queue=ASIDE) == pytest.approx(15)
        assert aside.status() is JobStatus.QUEUED
        finished = "buttress_jobs_finished_total"
        assert value(metrics, finished, queue=QUEUE, task="telemetry.blocker", outcome="succeeded") == 1
        assert value(metrics, finished, queue=QUEUE, task="telemetry.quick", outcome="succeeded") == 2
        assert value(metrics, finished, queue=QUEUE, task="telemetry.boom", outcome="dead") == 1
        run = series(metrics, "buttress_jobs_run_seconds", queue=QUEUE)
        assert run is not None
        assert run["count"] == 4
        assert run["sum"] == pytest.approx(4.0)  # the blocker ran 4 s of the clock, the others none
        assert b'buttress_jobs_depth{queue="telemetry-aside"} 1.0' in metrics.render_prometheus()
    finally:
        GATE.set()
        jobs.db.close()


# -- the health check ------------------------------------------------------------------------------------


def check(jobs: Jobs) -> CheckResult:
    container = Container()
    container.register_instance(Jobs, jobs)
    [jobs_check] = health_checks(container, Settings(_env_file=None))
    assert (jobs_check.name, jobs_check.critical) == ("jobs", False)
    result = jobs_check.fn()
    assert isinstance(result, CheckResult)
    return result


@pytest.fixture
def clocked(db_url: str) -> Any:
    clock = FakeClock()
    jobs = make_jobs(db_url, clock=clock, lease=30.0)
    jobs.ensure_schema()
    yield jobs, clock
    jobs.db.close()


def test_an_empty_queue_passes(clocked: tuple[Jobs, FakeClock]) -> None:
    jobs, _ = clocked
    assert check(jobs) == CheckResult("pass", "0 workers heartbeat, 0 jobs waiting", observed_value=0)


def test_jobs_waiting_with_no_worker_warn(clocked: tuple[Jobs, FakeClock]) -> None:
    jobs, clock = clocked
    quick.configure(jobs=jobs).defer_many([(1,), (2,)])
    result = check(jobs)
    assert (result.status, result.output) == (
        "warn",
        "2 jobs wait and no worker heartbeats: start buttress worker",
    )
    sql(
        jobs,
        "INSERT INTO buttress_job_workers (id, host, pid, queues, concurrency, started_at, heartbeat_at) "
        "VALUES ('silent', 'box', 1, :q, 1, :t, :t)",
        q=QUEUE,
        t=clock.time() - 31,  # its last heartbeat is older than a lease: it is not working
    )
    assert check(jobs).status == "warn"


def test_a_running_job_past_its_lease_warns_even_with_a_live_worker(clocked: tuple[Jobs, FakeClock]) -> None:
    jobs, clock = clocked
    handle = quick.configure(jobs=jobs).defer(3)
    sql(
        jobs,
        "UPDATE buttress_jobs SET status = 'running', worker = 'ghost', attempts = 1, lease_token = 1, "
        "lease_expires = :t WHERE id = :i",
        t=clock.time() - 1,
        i=handle.id,
    )
    with jobs.worker(queues=["telemetry-nothing-here"]).running():
        result = check(jobs)
    assert result.status == "warn"
    assert result.output.startswith("1 running jobs are past their lease: their worker died")
    sql(jobs, "UPDATE buttress_jobs SET lease_expires = :t WHERE id = :i", t=clock.time() + 30, i=handle.id)
    assert check(jobs).status == "pass"  # the same row with a lease still running is fine


def test_a_live_worker_passes_while_jobs_wait(clocked: tuple[Jobs, FakeClock]) -> None:
    jobs, _ = clocked
    quick.configure(jobs=jobs, queue=ASIDE).defer_many([(1,), (2,), (3,)])
    with jobs.worker(queues=["telemetry-nothing-here"]).running():
        result = check(jobs)
        registry = HealthRegistry(clock=FakeClock())
        registry.add("jobs", health_checks(_container(jobs), Settings(_env_file=None))[0].fn, critical=False)
        report = registry.run_sync()
    assert result == CheckResult("pass", "1 workers heartbeat, 3 jobs waiting", observed_value=3)
    assert report.status == "pass"
    assert check(jobs).status == "warn"  # the worker stopped cleanly: nobody is left to run them


def _container(jobs: Jobs) -> Container:
    container = Container()
    container.register_instance(Jobs, jobs)
    return container

"""Leasing ahead: a worker whose jobs are short leases the next ones while the database answers.

A job leased ahead and not started yet is still the worker's: a cancel means it never runs, a stop gives
it back to the queue unrun, and jobs that run long stop the leasing ahead.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from tests.jobs._subject import MODES, Subject

from buttress.jobs import JobStatus


@pytest.fixture(params=MODES[:1])
def subject(request: pytest.FixtureRequest, module_jobs_url: str) -> Iterator[Subject]:
    made = Subject(module_jobs_url, request.param, cancel_poll_interval=0.02, grace=0.0)
    try:
        yield made
    finally:
        made.close()


def _wait_for(predicate: object, what: str) -> None:
    deadline = threading.Event()
    for _ in range(1000):
        if predicate():  # type: ignore[operator]
            return
        deadline.wait(0.01)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_job_leased_ahead_and_cancelled_never_runs(subject: Subject) -> None:
    release = threading.Event()
    ran: list[str] = []

    def step(label: str) -> None:
        ran.append(label)
        if label == "blocker":
            assert release.wait(20)

    task = subject.task(step)
    worker = subject.jobs.worker(concurrency=1)
    with worker.running():
        subject.defer(task, "warm-up")  # teaches the worker that its jobs are short
        _wait_for(lambda: ran == ["warm-up"], "the warm-up")
        blocker = subject.defer(task, "blocker")
        waiting = subject.defer(task, "waiting")
        _wait_for(lambda: subject.jobs.get(waiting.id).status is JobStatus.RUNNING, "the job leased ahead")
        assert ran == ["warm-up", "blocker"]  # one slot: the second one waits in the worker
        assert subject.jobs.cancel(waiting.id) is JobStatus.RUNNING  # leased: a request to its worker
        _wait_for(lambda: subject.jobs.get(waiting.id).status is JobStatus.CANCELLED, "the cancel")
        release.set()
        _wait_for(lambda: subject.jobs.get(blocker.id).status is JobStatus.SUCCEEDED, "the blocker")
    assert ran == ["warm-up", "blocker"]


def test_a_stopping_worker_gives_jobs_leased_ahead_back_unrun(subject: Subject) -> None:
    release = threading.Event()
    ran: list[str] = []

    def step(label: str) -> None:
        ran.append(label)
        if label == "blocker":
            release.wait(20)

    task = subject.task(step)
    worker = subject.jobs.worker(concurrency=1)
    try:
        with worker.running():
            subject.defer(task, "warm-up")
            _wait_for(lambda: ran == ["warm-up"], "the warm-up")
            subject.defer(task, "blocker")
            waiting = subject.defer(task, "waiting")
            _wait_for(
                lambda: subject.jobs.get(waiting.id).status is JobStatus.RUNNING, "the job leased ahead"
            )
    finally:
        release.set()
    info = subject.jobs.get(waiting.id)
    assert (info.status, info.attempts, ran) == (JobStatus.QUEUED, 0, ["warm-up", "blocker"])


def test_long_jobs_stop_the_leasing_ahead(subject: Subject) -> None:
    worker = subject.jobs.worker(concurrency=2)
    assert worker._ahead() == 0  # nothing known yet
    worker._typical_run = 0.001
    assert worker._ahead() == 2
    worker._typical_run = 0.5
    assert worker._ahead() == 0
    limited = subject.jobs.worker(concurrency=2, tasks=[subject.task(lambda: None, concurrency=1).name])
    limited._typical_run = 0.001
    assert limited._ahead() == 0  # under a concurrency limit it never leases ahead

"""Cancel, seen from real worker processes: queued jobs never run, running ones stop, and how fast.

Latency is measured from just before the test's ``cancel()`` call to the moment the job itself noticed
(its ``CancelledError`` handler, its ``ctx.cancelled`` wait returning) or, for a ``process=True`` job,
to the moment its subprocess is gone. Both clocks are the machine's wall clock.
"""

from __future__ import annotations

import random
import statistics
import time
from functools import partial
from pathlib import Path

from tests.jobs import _proc_jobs as jobs_module
from tests.jobs._procs import Procs, procs, wait_for

from buttress.jobs import JobStatus

__all__ = ["procs"]

ASYNC_BUDGET = 0.25  # the budget: a running async job stops within 250 ms of cancel
PROCESS_BUDGET = 1.0


def _p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]


def test_queued_jobs_cancelled_before_any_worker_starts_never_run(procs: Procs) -> None:
    """1,000 queued jobs cancelled, then a worker starts: none runs; the job deferred after them does."""
    handles = jobs_module.counted.configure(jobs=procs.jobs).defer_many([() for _ in range(1_000)])
    assert {handle.cancel() for handle in handles} == {JobStatus.CANCELLED}
    last = jobs_module.quick.configure(jobs=procs.jobs).defer()  # behind all of them in FIFO order
    worker = procs.start(concurrency=10)
    assert last.wait(timeout=30).status is JobStatus.SUCCEEDED
    assert procs.lines("start") == [line for line in procs.lines("start") if line.job_id == last.id]
    assert dict(procs.rows("SELECT status, count(*) FROM buttress_jobs GROUP BY status")) == {
        "cancelled": 1_000,
        "succeeded": 1,
    }
    assert procs.scalar("SELECT max(attempts) FROM buttress_jobs WHERE status = 'cancelled'") == 0
    assert worker.alive()


def test_cancels_racing_busy_workers_never_let_a_cancelled_job_start(procs: Procs) -> None:
    """Two workers drain 2,000 jobs while the test cancels them in random order: every cancel that answered
    ``cancelled`` (the job was still waiting) won the race for good, its job never starts."""
    workers = [procs.start(concurrency=4) for _ in range(2)]
    for worker in workers:
        procs.wait_registered(worker)
    handles = jobs_module.chaos.configure(jobs=procs.jobs).defer_many(
        [(n,) for n in range(2_000)]
    )  # 10-40 ms
    order = list(handles)
    random.Random(15).shuffle(order)
    answers = {handle.id: handle.cancel() for handle in order}
    for handle in handles:
        handle.wait(timeout=30)
    started = {line.job_id for line in procs.lines("start")}
    won = {job_id for job_id, answer in answers.items() if answer is JobStatus.CANCELLED}
    assert won.isdisjoint(started)
    assert set(answers.values()) <= {JobStatus.CANCELLED, JobStatus.RUNNING, JobStatus.SUCCEEDED}
    assert {job_id for job_id, answer in answers.items() if answer is not JobStatus.CANCELLED} <= started
    assert won  # the race had both outcomes: some cancels came first ...
    assert started  # ... and some jobs did
    print(f"\n[cancel race {procs.backend}] {len(won)} cancelled while waiting, {len(started)} started")


def test_a_running_async_job_stops_within_250_ms_of_cancel(procs: Procs) -> None:
    """20 running async jobs cancelled one after the other: p99 from ``cancel()`` to the job's handler."""
    worker = procs.start(concurrency=4)
    procs.wait_registered(worker)
    task = jobs_module.waits_async.configure(jobs=procs.jobs)
    latencies = []
    for _ in range(20):
        handle = task.defer()
        wait_for(partial(procs.lines, "start", handle.id), 30, "the job starting")
        asked = time.time()
        assert handle.cancel() is JobStatus.RUNNING
        (stopped,) = wait_for(partial(procs.lines, "cancelled", handle.id), 10, "the job cancelled")
        latencies.append(stopped.at - asked)
        assert handle.wait(timeout=10).status is JobStatus.CANCELLED
    p50, p99 = statistics.median(latencies), _p99(latencies)
    print(f"\n[cancel async {procs.backend}] p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms")
    assert p99 <= ASYNC_BUDGET, sorted(latencies)


def test_a_running_sync_job_sees_ctx_cancelled(procs: Procs) -> None:
    """A sync job (in the worker's threads) waiting on ``ctx.cancelled`` sees the cancel, ends cancelled."""
    worker = procs.start(concurrency=2)
    procs.wait_registered(worker)
    task = jobs_module.waits_sync.configure(jobs=procs.jobs)
    latencies = []
    for _ in range(5):
        handle = task.defer()
        wait_for(partial(procs.lines, "start", handle.id), 30, "the job starting")
        asked = time.time()
        assert handle.cancel() is JobStatus.RUNNING
        (seen,) = wait_for(partial(procs.lines, "cancelled", handle.id), 10, "the job seeing the cancel")
        latencies.append(seen.at - asked)
        info = handle.wait(timeout=10)
        assert info.status is JobStatus.CANCELLED
        assert info.attempts == 1
    print(f"\n[cancel sync {procs.backend}] max {max(latencies) * 1000:.0f} ms")
    assert max(latencies) <= ASYNC_BUDGET


def _gone(pid: int) -> bool:
    """Whether process ``pid`` exited (reaped, or a zombie waiting for its parent)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


def test_a_process_job_that_never_checks_is_terminated_within_a_second(procs: Procs) -> None:
    """``@job(process=True)`` sleeping in its subprocess, deaf to ``ctx.cancelled``: the process is killed."""
    worker = procs.start(concurrency=2)
    procs.wait_registered(worker)
    handle = jobs_module.ignores_cancel.configure(jobs=procs.jobs).defer()
    (started,) = wait_for(lambda: procs.lines("start", handle.id), 60, "the job's subprocess starting")
    assert started.pid != worker.pid
    assert not _gone(started.pid)
    asked = time.time()
    assert handle.cancel() is JobStatus.RUNNING
    wait_for(lambda: _gone(started.pid), 5, "the job's subprocess ending")
    ended = time.time() - asked
    info = handle.wait(timeout=10)
    assert info.status is JobStatus.CANCELLED
    assert procs.lines("end", handle.id) == []
    print(f"\n[cancel process {procs.backend}] subprocess gone {ended * 1000:.0f} ms after cancel")
    assert ended <= PROCESS_BUDGET
    assert worker.alive()

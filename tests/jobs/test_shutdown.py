"""SIGTERM sent to real worker processes: stop leasing, let short jobs finish, release long ones at the grace.

A released job goes back to ``queued`` with its attempt not counted, so the next worker runs it as if the
stopped one had never leased it.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

from tests.jobs import _proc_jobs as jobs_module
from tests.jobs._procs import Procs, procs, wait_for

from buttress.jobs import JobStatus

__all__ = ["procs"]

GRACE = 3.0


def _delivered(pid: int, signum: int) -> bool:
    """Whether no ``signum`` is pending for ``pid`` (a second one sent before would merge with it)."""
    status = Path(f"/proc/{pid}/status").read_text()
    pending = [
        int(line.split()[1], 16) for line in status.splitlines() if line.startswith(("SigPnd:", "ShdPnd:"))
    ]
    return not any(mask & (1 << (signum - 1)) for mask in pending)


def test_sigterm_finishes_a_short_job_and_releases_a_long_one_when_the_grace_ends(procs: Procs) -> None:
    """Grace 3 s: the 1-second job finishes, the 30-second one goes back to the queue unrun (attempts 0), the
    worker leases nothing new meanwhile and exits; another worker then runs the released job."""
    stopping = procs.start(concurrency=3, grace=GRACE)
    procs.wait_registered(stopping)
    sleeps = jobs_module.sleeps.configure(jobs=procs.jobs)
    short, long = sleeps.defer(1.0), sleeps.defer(30.0)
    wait_for(
        lambda: procs.lines("start", short.id) and procs.lines("start", long.id), 30, "both jobs starting"
    )
    stopping.signal(signal.SIGTERM)
    asked = time.time()

    finished = short.wait(timeout=GRACE + 5)
    assert finished.status is JobStatus.SUCCEEDED
    assert finished.result["pid"] == stopping.pid
    assert finished.finished_at is not None
    assert finished.finished_at - asked < GRACE
    # the worker is draining, with a free slot: it must not lease a job deferred now
    later = jobs_module.quick.configure(jobs=procs.jobs).defer()
    assert stopping.wait_exit(GRACE + 10) == 0
    exited = time.time() - asked
    assert GRACE - 0.5 <= exited <= GRACE + 5  # it waited for the long job's grace, then stopped

    released = long.info()
    assert released.status is JobStatus.QUEUED
    assert released.attempts == 0  # the released attempt does not count
    assert released.worker is None
    assert [line.pid for line in procs.lines("cancelled", long.id)] == [stopping.pid]
    assert later.status() is JobStatus.QUEUED
    assert procs.lines("start", later.id) == []

    rescuer = procs.start(concurrency=3, env={"BUTTRESS_TEST_SLEEP_CAP": "0"})
    rerun = long.wait(timeout=30)
    assert rerun.status is JobStatus.SUCCEEDED
    assert rerun.result == {"pid": rescuer.pid, "token": 2, "attempt": 1}
    assert later.wait(timeout=30).result["pid"] == rescuer.pid
    print(f"\n[sigterm {procs.backend}] grace {GRACE:g} s: worker exited {exited:.2f} s after SIGTERM")


def test_sigterm_exits_as_soon_as_the_running_jobs_finish(procs: Procs) -> None:
    """A long grace, short jobs: the worker does not wait out the grace, it exits when they are done."""
    worker = procs.start(concurrency=4, grace=30)
    procs.wait_registered(worker)
    handles = jobs_module.sleeps.configure(jobs=procs.jobs).defer_many([(1.0,) for _ in range(4)])
    wait_for(lambda: len(procs.lines("start")) == 4, 30, "four jobs starting")
    worker.signal(signal.SIGTERM)
    asked = time.time()
    assert worker.wait_exit(15) == 0
    exited = time.time() - asked
    assert exited < 5
    for handle in handles:
        assert handle.info().status is JobStatus.SUCCEEDED
    assert procs.scalar("SELECT count(*) FROM buttress_job_workers") == 0  # it unregistered


def test_a_second_sigterm_releases_at_once(procs: Procs) -> None:
    """Grace 30 s, but a second SIGTERM: the running job is released now and the worker exits."""
    worker = procs.start(concurrency=2, grace=30)
    procs.wait_registered(worker)
    handle = jobs_module.sleeps.configure(jobs=procs.jobs).defer(60.0)
    wait_for(lambda: procs.lines("start", handle.id), 30, "the job starting")
    worker.signal(signal.SIGTERM)
    asked = time.time()
    wait_for(lambda: _delivered(worker.pid, signal.SIGTERM), 5, "the first SIGTERM reaching the worker")
    worker.signal(signal.SIGTERM)
    assert worker.wait_exit(10) == 0
    assert time.time() - asked < 5
    info = handle.info()
    assert info.status is JobStatus.QUEUED
    assert info.attempts == 0


def test_a_sync_job_deaf_to_the_stop_is_released_and_the_worker_still_exits(procs: Procs) -> None:
    """A sync job that ignores ``ctx.cancelled`` cannot be stopped: at the grace it is released, and the
    worker process exits anyway instead of waiting for its thread."""
    worker = procs.start(concurrency=2, grace=1)
    procs.wait_registered(worker)
    handle = jobs_module.sleeps_sync.configure(jobs=procs.jobs).defer(30.0)
    wait_for(lambda: procs.lines("start", handle.id), 30, "the job starting")
    worker.signal(signal.SIGTERM)
    asked = time.time()
    assert worker.wait_exit(10) == 0
    assert time.time() - asked < 6
    info = handle.info()
    assert info.status is JobStatus.QUEUED
    assert info.attempts == 0
    assert procs.lines("end", handle.id) == []

"""Concurrency limits hold across worker processes, checked from the job rows and from the jobs' own clocks.

Three worker processes compete for a job type limited to two (``@job(concurrency=2)``) and for a queue
limited to two (``define_queue(name, concurrency=2)``). While they run, the test samples the running rows
in a tight loop; afterwards it replays the start and end each job body logged and computes the most that
ever overlapped. A job body runs strictly inside its row's ``running`` interval (leased before, completed
after), so the bodies' overlap can only understate the rows'; both must stay at two, and reach it.
"""

from __future__ import annotations

import time

from tests.jobs import _proc_jobs as jobs_module
from tests.jobs._proc_jobs import Line
from tests.jobs._procs import Procs, procs, wait_for

__all__ = ["procs"]


def _max_overlap(lines: list[Line]) -> int:
    """The most job bodies running at one instant (an end before a start at the same instant)."""
    events = sorted(
        [(line.at, 1 if line.kind == "start" else -1) for line in lines if line.kind in ("start", "end")],
        key=lambda event: (event[0], event[1]),
    )
    running = peak = 0
    for _, step in events:
        running += step
        peak = max(peak, running)
    return peak


def _run_and_sample(harness: Procs, where: str, total: int, **params: str) -> tuple[int, int]:
    """Sample running rows matching ``where`` until ``total`` jobs succeeded; (most seen, samples taken)."""
    running = f"SELECT count(*) FROM buttress_jobs WHERE status = 'running' AND {where}"
    done = "SELECT count(*) FROM buttress_jobs WHERE status = 'succeeded'"
    peak = samples = 0
    deadline = time.monotonic() + 60
    with harness.db.engine.connect() as connection:
        from sqlalchemy import text

        sample, finished = text(running), text(done)
        while True:
            peak = max(peak, int(connection.execute(sample, params).scalar_one()))
            samples += 1
            connection.commit()  # a fresh snapshot for the next sample
            if samples % 20 == 0:
                if int(connection.execute(finished).scalar_one()) >= total:
                    return peak, samples
                connection.commit()
            assert time.monotonic() < deadline, "the limited jobs did not finish within 60 s"


def _start_three(harness: Procs, concurrency: int) -> None:
    workers = [harness.start(concurrency=concurrency) for _ in range(3)]
    for worker in workers:
        harness.wait_registered(worker)


def test_a_job_type_limited_to_two_never_runs_three_across_three_workers(procs: Procs) -> None:
    """``@job(concurrency=2)``, three workers of one slot each: the third one always finds the limit full."""
    _start_three(procs, concurrency=1)
    handles = jobs_module.limited.configure(jobs=procs.jobs).defer_many([(0.15,) for _ in range(30)])
    peak_rows, samples = _run_and_sample(procs, "task = :task", len(handles), task=jobs_module.limited.name)
    assert {handle.status().value for handle in handles} == {"succeeded"}
    lines = procs.log()
    assert len([line for line in lines if line.kind == "end"]) == len(handles)
    peak_bodies = _max_overlap(lines)
    assert peak_rows == 2, f"rows: at most {peak_rows} running over {samples} samples"
    assert peak_bodies == 2
    # one slot per worker: two bodies at once were two processes (the third, polling all along, may get none:
    # a worker applies its completion and leases the freed place in one transaction)
    assert len({line.pid for line in lines}) >= 2
    print(
        f"\n[limit task {procs.backend}] rows max {peak_rows} ({samples} samples), bodies max {peak_bodies}"
    )


def test_a_queue_limited_to_two_never_runs_three_across_three_workers(procs: Procs) -> None:
    """``define_queue(name, concurrency=2)`` over an async and a sync job type, three workers of two slots."""
    _start_three(procs, concurrency=2)
    calls = [(0.1,) for _ in range(15)]
    handles = [
        *jobs_module.in_queue_async.configure(jobs=procs.jobs).defer_many(calls),
        *jobs_module.in_queue_sync.configure(jobs=procs.jobs).defer_many(calls),
    ]
    peak_rows, samples = _run_and_sample(
        procs, "queue = :queue", len(handles), queue=jobs_module.LIMITED_QUEUE
    )
    assert {handle.status().value for handle in handles} == {"succeeded"}
    lines = procs.log()
    assert len([line for line in lines if line.kind == "end"]) == len(handles)
    peak_bodies = _max_overlap(lines)
    assert peak_rows == 2, f"rows: at most {peak_rows} running over {samples} samples"
    assert peak_bodies == 2
    print(
        f"\n[limit queue {procs.backend}] rows max {peak_rows} ({samples} samples), bodies max {peak_bodies}"
    )


def test_the_limit_frees_its_place_when_a_worker_dies(procs: Procs) -> None:
    """A SIGKILLed worker's running jobs hold their places in the limit until their lease passes."""
    first = procs.start(concurrency=2)
    procs.wait_registered(first)
    stuck = jobs_module.limited.configure(jobs=procs.jobs).defer_many([(30.0,), (30.0,)])
    wait_for(lambda: len(procs.lines("start")) == 2, 30, "two limited jobs starting")
    first.kill()
    killed_at = time.time()
    second = procs.start(concurrency=2, env={"BUTTRESS_TEST_SLEEP_CAP": "0"})
    waiting = jobs_module.limited.configure(jobs=procs.jobs).defer(0.0)
    info = waiting.wait(timeout=30)
    assert info.status.value == "succeeded"
    for handle in stuck:
        assert handle.wait(timeout=30).status.value == "succeeded"
    assert {line.pid for line in procs.lines("end")} == {second.pid}
    # the new job waited for the dead worker's places: it started only once their leases had passed
    (started,) = procs.lines("start", waiting.id)
    assert started.at > killed_at + 1.0
